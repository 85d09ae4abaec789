#pragma once

// TlsSession: one TLS connection, sans-IO. Ciphertext comes in through feed() and goes out by
// being appended to a caller's ByteBuffer; plaintext likewise. No sockets, no timers: the caller
// moves bytes and enforces the handshake timeout.
//
// I/O: a custom BIO reads straight from the span given to feed() and appends straight into the
// ciphertextOut ByteBuffer of the current call, so the only copies are OpenSSL's own (into its
// read buffer, out of its write buffer). Plaintext is decrypted directly into plaintextOut's
// blocks and encrypted directly from the caller's memory.
//
// Verification (ztunnel-compat §2.2, X.509-SVID):
//   - client: the server chain verifies against our roots for serverAuth, the leaf is not a CA,
//     carries exactly one URI SAN, it parses as SPIFFE and equals one of the expected identities;
//     the server selected ALPN "h2";
//   - server: the client chain verifies for clientAuth, the leaf is not a CA, carries exactly one
//     URI SAN, and its trust domain equals our own identity's trust domain.
// Rejections happen inside the handshake, so the peer receives an alert (bad_certificate for
// identity problems, OpenSSL's mapping for chain errors, certificate_required for a missing client
// certificate) and no application data is ever released to or from an unverified peer. Note the
// TLS 1.3 asymmetry: a client is established once it has sent its Finished, before the server has
// checked the client certificate; a server-side rejection then reaches the client as an alert
// (an error from its next feed()), and anything the client wrote meanwhile is discarded unread.
//
// Records: write() hands whole blocks to SSL_write, so bulk data goes out in full 16 KiB records
// (16406 bytes on the wire with TLS 1.3 AES-GCM).
//
// Errors: every failure drains the thread's OpenSSL error queue into the Error's detail; a failed
// session stays failed (every later call returns kInvalidState). Alert bytes produced by a failure
// are already in ciphertextOut when the error is returned: flush them, then close the socket.
//
// Thread: a session is used by one thread at a time (it may move between threads between calls).
// Lifetime: holds a reference to its TlsContext.

#include <openssl/types.h>

#include <array>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "ztunnel/core/byte_buffer.h"
#include "ztunnel/core/result.h"
#include "ztunnel/tls/spiffe.h"
#include "ztunnel/tls/tls_context.h"
#include "ztunnel/tls/tls_error.h"

namespace zt::tls {

namespace detail {
struct SessionAccess;
}

class TlsSession {
 public:
  // Maximum plaintext per record (TLS's 2^14).
  static constexpr size_t kMaxRecordPlaintext = 16384;
  // Bytes a full-size record takes on the wire with TLS 1.3 AES-GCM: header 5 + content type 1 +
  // tag 16.
  static constexpr size_t kTls13RecordOverhead = 22;

  // A client that accepts a server presenting any of `expectedServerIdentities` (must not be
  // empty). The context must be a client context.
  static Result<std::unique_ptr<TlsSession>> client(std::shared_ptr<const TlsContext> context,
                                                    std::vector<Identity> expectedServerIdentities);
  // A server; accepts clients from its own trust domain. The context must be a server context.
  static Result<std::unique_ptr<TlsSession>> server(std::shared_ptr<const TlsContext> context);

  ~TlsSession();
  TlsSession(const TlsSession&) = delete;
  TlsSession& operator=(const TlsSession&) = delete;

  // Client: appends the ClientHello to ciphertextOut. Server: no-op. Call once, first.
  Status start(ByteBuffer& ciphertextOut);

  struct FeedResult {
    bool handshakeDone = false;  // established; stays true once set
    bool peerClosed = false;     // close_notify received (later input is ignored)
  };
  // Consumes all of `ciphertext`: advances the handshake, decrypts every complete record into
  // plaintextOut, keeps partial records for the next call, and appends whatever must be sent
  // (handshake messages, alerts, KeyUpdate answers) to ciphertextOut.
  Result<FeedResult> feed(std::span<const uint8_t> ciphertext, ByteBuffer& plaintextOut,
                          ByteBuffer& ciphertextOut);
  // Same, consuming (draining) a ByteBuffer chunk by chunk.
  Result<FeedResult> feed(ByteBuffer& ciphertext, ByteBuffer& plaintextOut,
                          ByteBuffer& ciphertextOut);

  // Encrypts all of `plaintext` (only once established). Large spans become 16 KiB records.
  Status write(std::span<const uint8_t> plaintext, ByteBuffer& ciphertextOut);
  // Drains `plaintext`, one SSL_write per contiguous block, so full 16 KiB blocks become full
  // records; small fragments (< 4 KiB) followed by more data are first coalesced so no tiny
  // records are produced.
  Status write(ByteBuffer& plaintext, ByteBuffer& ciphertextOut);

  // Sends close_notify (once; no-op before the handshake completed or after a failure). No
  // write() is possible afterwards; feed() keeps working until the peer's close_notify.
  void close(ByteBuffer& ciphertextOut);

  bool isClient() const { return client_; }
  bool established() const { return established_; }
  bool failed() const { return failed_; }
  bool closeSent() const { return closeSent_; }
  bool peerClosed() const { return peerClosed_; }

  // The verified peer identity (non-null once established).
  const Identity* peerIdentity() const { return established_ ? &peerIdentity_ : nullptr; }
  const std::vector<Identity>& expectedServerIdentities() const { return expected_; }
  std::string_view alpn() const;
  // TLS1_3_VERSION (0x0304) or TLS1_2_VERSION; 0 before the handshake.
  int version() const;
  // OpenSSL's name of the negotiated suite, e.g. "TLS_AES_256_GCM_SHA384"; "" before.
  std::string_view cipherName() const;
  // IANA id of the negotiated suite, e.g. 0x1302; 0 before the handshake.
  uint16_t cipherSuiteId() const;
  // Last alert we sent / received (TLS AlertDescription, e.g. 42 bad_certificate), or -1.
  int alertSent() const { return alertSent_; }
  int alertReceived() const { return alertReceived_; }

  // kTLS support (ktls.h). Requires TlsOptions::captureTrafficSecrets and TLS 1.3.
  struct TrafficState {
    uint16_t cipherSuite = 0;           // 0x1301 or 0x1302
    std::span<const uint8_t> txSecret;  // our application traffic secret (write)
    std::span<const uint8_t> rxSecret;  // the peer's (read)
    uint64_t txSeq = 0;                 // next record sequence number we send
    uint64_t rxSeq = 0;                 // next record sequence number we expect
  };
  // Errors: kKernelTls if secrets were not captured, the session is not an established TLS 1.3
  // session, a KeyUpdate happened, or OpenSSL still holds unprocessed input.
  Result<TrafficState> trafficState() const;

 private:
  friend struct detail::SessionAccess;

  TlsSession(std::shared_ptr<const TlsContext> context, bool client);
  Status init();
  Result<FeedResult> feedOne(ByteBuffer& plaintextOut);
  Status onHandshakeComplete();
  Status readRecords(ByteBuffer& plaintextOut);
  Status writeSpan(std::span<const uint8_t> plaintext);
  Error failWith(int sslError, bool inHandshake);
  Status checkWritable() const;

  std::shared_ptr<const TlsContext> context_;
  SSL* ssl_ = nullptr;  // owned
  bool client_;
  bool started_ = false;
  bool established_ = false;
  bool failed_ = false;
  bool closeSent_ = false;
  bool peerClosed_ = false;
  int alertSent_ = -1;
  int alertReceived_ = -1;

  std::vector<Identity> expected_;  // client only
  Identity peerIdentity_;

  // Set when our verify callback rejected the peer: code and explanation for the Error.
  TlsErrc verifyErrc_ = TlsErrc::kHandshakeFailed;
  std::string verifyError_;

  // BIO state for the call in progress: the ciphertext being fed and the buffer that receives
  // whatever OpenSSL writes. Both are reset when the public call returns.
  std::span<const uint8_t> in_;
  ByteBuffer* out_ = nullptr;

  // kTLS bookkeeping (captureTrafficSecrets only).
  std::array<uint8_t, 48> txSecret_{};
  std::array<uint8_t, 48> rxSecret_{};
  uint8_t txSecretLen_ = 0;
  uint8_t rxSecretLen_ = 0;
  bool txAppEpoch_ = false;
  bool rxAppEpoch_ = false;
  bool keyUpdated_ = false;
  uint64_t txRecords_ = 0;
  uint64_t rxRecords_ = 0;
};

}  // namespace zt::tls
