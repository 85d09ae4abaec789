#pragma once

// TlsContext: one SSL_CTX configured with ztunnel's HBONE TLS profile (ztunnel-compat §2.1):
//   - TLS 1.3 only (TlsOptions::allowTls12 adds TLS 1.2 with ECDHE-{ECDSA,RSA}-AES{256,128}-GCM);
//   - TLS 1.3 suites exactly TLS_AES_256_GCM_SHA384:TLS_AES_128_GCM_SHA256 (no ChaCha20);
//   - groups P-256:P-384:X25519 (ztunnel's OpenSSL-provider profile is P-256/P-384; X25519 is
//     accepted as well so peers that only offer it still interoperate; our ClientHello carries a
//     P-256 key share);
//   - ALPN "h2": offered by clients, required by servers (no ALPN extension or no "h2" in it:
//     alert no_application_protocol); a client rejects a server that did not select "h2";
//   - no SNI, no session resumption (no tickets, no session cache, no PSK), no renegotiation;
//   - mutual TLS: servers require a client certificate; both sides present the Credentials' chain
//     and verify the peer against the Credentials' roots, then apply the SPIFFE rules (§2.2, see
//     tls_session.h).
//
// Thread: immutable after creation and shared across worker threads through
// std::shared_ptr<const TlsContext>; creating sessions from several threads at once is safe.
// Certificate rotation = a new TlsContext; live sessions keep the context they were created with.

#include <openssl/types.h>

#include <memory>

#include "ztunnel/core/result.h"
#include "ztunnel/tls/certificate.h"
#include "ztunnel/tls/tls_error.h"

namespace zt::tls {

struct TlsOptions {
  // TLS 1.2 as well as 1.3 (ztunnel's TLS12_ENABLED).
  bool allowTls12 = false;
  // Capture the TLS 1.3 application traffic secrets and count records, so a session can be
  // handed to the kernel (ktls.h). Off by default: secrets are then never materialised.
  bool captureTrafficSecrets = false;
  // Free OpenSSL's per-session read/write buffers while idle (SSL_MODE_RELEASE_BUFFERS): about
  // 34 KiB less per idle session at the cost of a malloc/free per burst.
  bool releaseIdleBuffers = false;
};

class TlsContext {
 public:
  enum class Role { kClient, kServer };

  // The group list and suites above, for tests and documentation.
  static constexpr const char* kTls13CipherSuites = "TLS_AES_256_GCM_SHA384:TLS_AES_128_GCM_SHA256";
  static constexpr const char* kTls12CipherList =
      "ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-ECDSA-AES128-GCM-SHA256:"
      "ECDHE-RSA-AES256-GCM-SHA384:ECDHE-RSA-AES128-GCM-SHA256";
  static constexpr const char* kGroups = "P-256:P-384:X25519";
  // OpenSSL's read buffer with read-ahead: room for two full records per BIO read.
  static constexpr size_t kReadBufferSize = 2 * (16384 + 256 + 5);

  // Errors: TlsErrc::kContextSetup (with OpenSSL's reason), kInvalidArgument (null credentials).
  static Result<std::shared_ptr<const TlsContext>> makeClient(
      std::shared_ptr<const Credentials> credentials, TlsOptions options = {});
  static Result<std::shared_ptr<const TlsContext>> makeServer(
      std::shared_ptr<const Credentials> credentials, TlsOptions options = {});

  ~TlsContext();
  TlsContext(const TlsContext&) = delete;
  TlsContext& operator=(const TlsContext&) = delete;

  Role role() const { return role_; }
  const TlsOptions& options() const { return options_; }
  const Credentials& credentials() const { return *credentials_; }
  const std::shared_ptr<const Credentials>& credentialsPtr() const { return credentials_; }

  // For TlsSession.
  SSL_CTX* native() const { return ctx_; }
  const BIO_METHOD* bioMethod() const { return bioMethod_; }

 private:
  TlsContext(Role role, std::shared_ptr<const Credentials> credentials, TlsOptions options);
  static Result<std::shared_ptr<const TlsContext>> make(
      Role role, std::shared_ptr<const Credentials> credentials, TlsOptions options);
  Status configure();

  Role role_;
  TlsOptions options_;
  std::shared_ptr<const Credentials> credentials_;
  SSL_CTX* ctx_ = nullptr;           // owned
  BIO_METHOD* bioMethod_ = nullptr;  // owned; the memory BIO of our sessions (tls_session.cc)
};

}  // namespace zt::tls
