#pragma once

// Workload credentials: the PEM bundle as Istio stores it, and its parsed, immutable form.
//
// Thread: Credentials is immutable after fromPem() and shared across threads through
// std::shared_ptr<const Credentials>; the OpenSSL objects it exposes must only be read (they are
// reference-counted and internally locked where OpenSSL requires it, e.g. the X509_STORE).

#include <openssl/types.h>
#include <openssl/x509.h>

#include <chrono>
#include <filesystem>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "ztunnel/core/result.h"
#include "ztunnel/tls/spiffe.h"
#include "ztunnel/tls/tls_error.h"

namespace zt::tls {

// The three PEM documents of a workload identity. Istio's file names: cert-chain.pem (leaf first,
// then intermediates), key.pem (PKCS#8 or SEC1 private key of the leaf), root-cert.pem (one or
// more trust anchors, used to verify peers).
struct CertificateBundle {
  std::string certChainPem;
  std::string privateKeyPem;
  std::string rootCertsPem;

  friend bool operator==(const CertificateBundle&, const CertificateBundle&) = default;
};

class Credentials {
 public:
  using TimePoint = std::chrono::system_clock::time_point;

  // Parses and checks a bundle: at least one certificate in the chain and in the roots, a private
  // key (unencrypted) that matches the leaf, and exactly one URI SAN on the leaf that parses as a
  // SPIFFE identity. Validity dates are recorded, not enforced (an expired certificate loads; the
  // secret manager decides what to do with it). Errors: TlsErrc::kInvalidCredentials.
  static Result<std::shared_ptr<const Credentials>> fromPem(const CertificateBundle& bundle);

  ~Credentials();
  Credentials(const Credentials&) = delete;
  Credentials& operator=(const Credentials&) = delete;

  const Identity& identity() const { return identity_; }
  TimePoint notBefore() const { return notBefore_; }
  TimePoint notAfter() const { return notAfter_; }
  // Leaf serial number, lower-case hex without separators.
  const std::string& serialHex() const { return serialHex_; }
  const CertificateBundle& bundle() const { return bundle_; }
  size_t rootCount() const { return rootCount_; }

  // Verifies the leaf and intermediates against our own roots at time `at` (e.g. to sanity-check
  // a CA response). Errors: TlsErrc::kInvalidCredentials with OpenSSL's reason.
  Status verifyOwnChain(TimePoint at) const;

  // Borrowed OpenSSL views for the tls module (valid as long as this object).
  X509* leaf() const { return leaf_; }
  STACK_OF(X509) * intermediates() const { return intermediates_; }
  EVP_PKEY* privateKey() const { return key_; }
  X509_STORE* trustStore() const { return store_; }

 private:
  Credentials() = default;

  CertificateBundle bundle_;
  Identity identity_;
  TimePoint notBefore_{};
  TimePoint notAfter_{};
  std::string serialHex_;
  size_t rootCount_ = 0;
  // Owned; released in the destructor (kept as raw pointers so this header needs only
  // <openssl/types.h>).
  X509* leaf_ = nullptr;
  STACK_OF(X509) * intermediates_ = nullptr;
  EVP_PKEY* key_ = nullptr;
  X509_STORE* store_ = nullptr;
};

// The SPIFFE identity of a certificate per X.509-SVID: the certificate must carry exactly one URI
// SAN and it must parse as a SPIFFE id. `uriSanCount`, if given, receives the number of URI SANs.
// Errors: TlsErrc::kPeerIdentityRejected naming what was found.
Result<Identity> spiffeIdentityOf(X509* cert, size_t* uriSanCount = nullptr);

// All URI SANs of a certificate, in order (for diagnostics).
std::vector<std::string> uriSansOf(X509* cert);

// Istio's file names for a bundle on disk.
inline constexpr std::string_view kCertChainFileName = "cert-chain.pem";
inline constexpr std::string_view kPrivateKeyFileName = "key.pem";
inline constexpr std::string_view kRootCertFileName = "root-cert.pem";

// Writes the bundle into `dir` (which must exist) as cert-chain.pem (0644), key.pem (0600) and
// root-cert.pem (0644). Each file is written to a temporary file in `dir`, fsync'ed and renamed
// over the target, so a reader sees the old or the new file, never a partial one (the three files
// are not replaced as one unit; readers should reload on any change and re-check key/leaf match).
// Errors: TlsErrc::kFileIo with errno.
Status writeBundleFiles(const CertificateBundle& bundle, const std::filesystem::path& dir);

// Reads the three files written by writeBundleFiles (or by istio-agent). Errors: kFileIo.
Result<CertificateBundle> readBundleFiles(const std::filesystem::path& dir);

}  // namespace zt::tls
