#pragma once

// RawTlsPeer: a deliberately configurable plain-OpenSSL peer on memory BIOs, for testing our
// TlsSession against peers that do not follow the HBONE profile (TLS 1.2 only, no ALPN,
// http/1.1, no client certificate, SNI, session tickets, ...), and for inspecting what our client
// sends (ClientHello extensions) from a server-side callback.
//
// Thread: single-threaded.

#include <openssl/ssl.h>

#include <optional>
#include <string>
#include <vector>

#include "ztunnel/core/byte_buffer.h"
#include "ztunnel/core/result.h"
#include "ztunnel/tls/certificate.h"
#include "ztunnel/tls/tls_session.h"

namespace zt::testing {

struct RawPeerConfig {
  bool server = false;
  int minVersion = TLS1_2_VERSION;
  int maxVersion = TLS1_3_VERSION;
  // Client: ALPN protocols offered (none: no ALPN extension). Server: protocols it is willing to
  // select, in preference order (none: it never selects ALPN).
  std::vector<std::string> alpn;
  // Certificate chain + key to present (certChainPem empty: none). rootCertsPem: verify the other
  // side against these (empty: do not verify).
  tls::CertificateBundle credentials;
  std::string sni;                 // client: server_name to send
  bool requireClientCert = false;  // server
  int numTickets = 2;              // server: TLS 1.3 tickets to issue (OpenSSL default 2)
  std::string tls13Suites;         // empty: OpenSSL defaults
  std::string tls12Ciphers;        // empty: OpenSSL defaults
};

class RawTlsPeer {
 public:
  explicit RawTlsPeer(const RawPeerConfig& config);  // throws std::runtime_error on set-up errors
  ~RawTlsPeer();
  RawTlsPeer(const RawTlsPeer&) = delete;
  RawTlsPeer& operator=(const RawTlsPeer&) = delete;

  // Feeds ciphertext from the other side; advances the handshake / reads plaintext; returns false
  // once the peer has failed. Output ciphertext accumulates in out().
  bool step(ByteBuffer& in);
  ByteBuffer& out() { return out_; }
  ByteBuffer& plaintext() { return plain_; }
  bool write(std::string_view data);
  void shutdown();

  bool established() const { return SSL_is_init_finished(ssl_) == 1; }
  bool failed() const { return failed_; }
  const std::string& error() const { return error_; }
  std::string alpn() const;
  int version() const { return SSL_version(ssl_); }
  SSL* ssl() const { return ssl_; }

  // Server side, filled by the ClientHello callback.
  bool sawClientHello = false;
  bool clientHelloHadSni = false;
  std::vector<int> clientHelloExtensions;
  // Client side: NewSessionTicket messages received (sessions offered for resumption).
  int newSessions = 0;

 private:
  void flush();
  void drive();

  SSL_CTX* ctx_ = nullptr;
  SSL* ssl_ = nullptr;
  BIO* wbio_ = nullptr;  // owned by ssl_
  BIO* rbio_ = nullptr;  // owned by ssl_
  std::vector<std::string> alpnServer_;
  ByteBuffer out_;
  ByteBuffer plain_;
  bool failed_ = false;
  std::string error_;
};

struct RawOutcome {
  Status ours = ok();
  bool oursEstablished = false;
  bool peerEstablished = false;
  bool peerFailed = false;
  std::string peerError;
};

// Drives a handshake between our session and a raw peer (which one is the client follows
// `ours.isClient()`), bounded by maxRounds. Early plaintext received by ours lands in
// oursPlaintext if given.
RawOutcome pumpRaw(tls::TlsSession& ours, RawTlsPeer& peer, int maxRounds = 16,
                   ByteBuffer* oursPlaintext = nullptr);

}  // namespace zt::testing
