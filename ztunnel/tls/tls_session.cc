#include "ztunnel/tls/tls_session.h"
#include "ztunnel/core/hex.h"

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/tls1.h>
#include <openssl/x509v3.h>

#include <algorithm>
#include <cstring>

#include "ztunnel/core/assert.h"
#include "ztunnel/tls/certificate.h"
#include "ztunnel/tls/openssl_util.h"
#include "ztunnel/tls/session_hooks.h"
#include "ztunnel/tls/x509_util.h"

namespace zt::tls {

namespace {

// Below this much room left in plaintextOut's tail block, decrypt into a fresh block instead of
// splitting a record into many small SSL_read calls.
constexpr size_t kMinReadSpace = 2048;
// write(ByteBuffer&): fragments shorter than this (followed by more data) are coalesced.
constexpr size_t kCoalesceBelow = 4096;

// Scratch for coalescing small fragments into one record; per thread (sessions are
// single-threaded and the buffer is only live during one SSL_write).
std::array<uint8_t, TlsSession::kMaxRecordPlaintext>& coalesceScratch() {
  thread_local std::array<uint8_t, TlsSession::kMaxRecordPlaintext> scratch;
  return scratch;
}

// SSL_get_error consults the thread's error queue, so an entry left by unrelated code on this
// thread would turn our next WANT_READ into a fatal error. Peeking first is cheaper than clearing.
void clearStaleErrors() {
  if (ERR_peek_error() != 0) {
    ERR_clear_error();
  }
}

std::string joinIdentities(const std::vector<Identity>& ids) {
  std::string out = "[";
  for (size_t i = 0; i < ids.size(); ++i) {
    if (i > 0) {
      out += ", ";
    }
    out += ids[i].toUri();
  }
  out += "]";
  return out;
}

std::string describePresented(X509* cert) {
  std::vector<std::string> uris = uriSansOf(cert);
  std::string out = "URI SANs [";
  for (size_t i = 0; i < uris.size(); ++i) {
    if (i > 0) {
      out += ", ";
    }
    // Peer-controlled: bound and sanitise.
    for (size_t j = 0; j < uris[i].size() && j < 256; ++j) {
      char c = uris[i][j];
      out += (c >= 0x20 && c < 0x7f) ? c : '?';
    }
  }
  out += "]";
  std::string subject = subjectOneLine(cert);
  if (!subject.empty()) {
    out += ", subject \"" + subject.substr(0, 256) + "\"";
  }
  return out;
}

}  // namespace

// ---- OpenSSL callbacks -------------------------------------------------------------------------

namespace detail {

struct SessionAccess {
  static TlsSession* fromSsl(const SSL* ssl) {
    return static_cast<TlsSession*>(SSL_get_app_data(ssl));
  }

  static int bioWrite(BIO* bio, const char* data, size_t len, size_t* written) {
    BIO_clear_retry_flags(bio);
    auto* s = static_cast<TlsSession*>(BIO_get_data(bio));
    if (s == nullptr || s->out_ == nullptr) {
      // OpenSSL only writes from inside our public calls, which always set out_.
      ZT_ASSERT(false);
      return 0;
    }
    s->out_->append(std::span(reinterpret_cast<const uint8_t*>(data), len));
    *written = len;
    return 1;
  }

  static int bioRead(BIO* bio, char* buf, size_t len, size_t* readBytes) {
    BIO_clear_retry_flags(bio);
    auto* s = static_cast<TlsSession*>(BIO_get_data(bio));
    if (s == nullptr || s->in_.empty()) {
      BIO_set_retry_read(bio);
      *readBytes = 0;
      return 0;
    }
    size_t n = std::min(len, s->in_.size());
    std::memcpy(buf, s->in_.data(), n);
    s->in_ = s->in_.subspan(n);
    *readBytes = n;
    return 1;
  }

  static long bioCtrl(BIO* bio, int cmd, long, void*) {
    auto* s = static_cast<TlsSession*>(BIO_get_data(bio));
    switch (cmd) {
      case BIO_CTRL_FLUSH:
        return 1;
      case BIO_CTRL_PENDING:
        return s != nullptr ? static_cast<long>(s->in_.size()) : 0;
      case BIO_CTRL_WPENDING:
        return 0;
      default:
        return 0;
    }
  }

  static void info(const SSL* ssl, int where, int ret) {
    if ((where & SSL_CB_ALERT) == 0) {
      return;
    }
    TlsSession* s = fromSsl(ssl);
    if (s == nullptr) {
      return;
    }
    if ((where & SSL_CB_READ) != 0) {
      s->alertReceived_ = ret & 0xff;
    } else {
      s->alertSent_ = ret & 0xff;
    }
  }

  // Counts records per direction once the application traffic keys are in use (kTLS needs the
  // next sequence numbers). Installed only with captureTrafficSecrets.
  static void msg(int writeP, int, int contentType, const void* buf, size_t len, SSL* ssl, void*) {
    TlsSession* s = fromSsl(ssl);
    if (s == nullptr) {
      return;
    }
    if (contentType == SSL3_RT_HEADER) {
      // Called once per record read or written, before the record's messages are processed.
      if (writeP != 0 && s->txAppEpoch_) {
        ++s->txRecords_;
      } else if (writeP == 0 && s->rxAppEpoch_) {
        ++s->rxRecords_;
      }
      return;
    }
    if (contentType == SSL3_RT_HANDSHAKE && len > 0) {
      uint8_t type = static_cast<const uint8_t*>(buf)[0];
      if (type == SSL3_MT_FINISHED) {
        // The record carrying Finished was already counted (or not) under the handshake keys;
        // every later record in this direction uses the application keys.
        (writeP != 0 ? s->txAppEpoch_ : s->rxAppEpoch_) = true;
      } else if (type == SSL3_MT_KEY_UPDATE) {
        s->keyUpdated_ = true;
      }
    }
  }

  static int verify(X509_STORE_CTX* store) {
    SSL* ssl =
        static_cast<SSL*>(X509_STORE_CTX_get_ex_data(store, SSL_get_ex_data_X509_STORE_CTX_idx()));
    TlsSession* s = ssl != nullptr ? fromSsl(ssl) : nullptr;
    if (s == nullptr) {
      X509_STORE_CTX_set_error(store, X509_V_ERR_APPLICATION_VERIFICATION);
      return 0;
    }
    auto reject = [&](TlsErrc code, std::string why, int x509Error) {
      s->verifyErrc_ = code;
      s->verifyError_ = std::move(why);
      X509_STORE_CTX_set_error(store, x509Error);
      return 0;
    };

    if (s->client_) {
      // EncryptedExtensions (TLS 1.3) / ServerHello (1.2) precede the Certificate, so the
      // server's ALPN choice is known here; refusing now keeps our Finished from being sent.
      const unsigned char* proto = nullptr;
      unsigned int protoLen = 0;
      SSL_get0_alpn_selected(ssl, &proto, &protoLen);
      if (protoLen != 2 || std::memcmp(proto, "h2", 2) != 0) {
        return reject(TlsErrc::kAlpnMismatch,
                      protoLen == 0 ? "server selected no ALPN protocol (h2 required)"
                                    : "server selected an ALPN protocol other than h2",
                      X509_V_ERR_APPLICATION_VERIFICATION);
      }
    }

    X509* leaf = X509_STORE_CTX_get0_cert(store);
    if (leaf == nullptr) {
      return reject(TlsErrc::kPeerCertificateInvalid, "peer sent no certificate",
                    X509_V_ERR_APPLICATION_VERIFICATION);
    }
    // Chain: roots from our Credentials, purpose sslserver/sslclient (EKU) set by libssl.
    if (X509_verify_cert(store) != 1) {
      int err = X509_STORE_CTX_get_error(store);
      int depth = X509_STORE_CTX_get_error_depth(store);
      drainOpenSslErrors();
      return reject(TlsErrc::kPeerCertificateInvalid,
                    std::string("peer certificate chain rejected: ") +
                        X509_verify_cert_error_string(err) + " (depth " + std::to_string(depth) +
                        "); peer presented " + describePresented(leaf),
                    err == X509_V_OK ? X509_V_ERR_APPLICATION_VERIFICATION : err);
    }
    // webpki (ztunnel) refuses CA certificates as end entities; OpenSSL does not.
    if ((X509_get_extension_flags(leaf) & EXFLAG_CA) != 0) {
      return reject(TlsErrc::kPeerCertificateInvalid,
                    "peer leaf certificate is a CA certificate (basicConstraints CA:TRUE); "
                    "peer presented " +
                        describePresented(leaf),
                    X509_V_ERR_CERT_REJECTED);
    }
    auto id = spiffeIdentityOf(leaf);
    if (!id) {
      std::string why = id.error().detail() + "; peer presented " + describePresented(leaf);
      if (s->client_) {
        why += "; expected one of " + joinIdentities(s->expected_);
      }
      return reject(TlsErrc::kPeerIdentityRejected, std::move(why), X509_V_ERR_CERT_REJECTED);
    }
    if (s->client_) {
      if (std::find(s->expected_.begin(), s->expected_.end(), *id) == s->expected_.end()) {
        return reject(TlsErrc::kPeerIdentityRejected,
                      "peer did not present the expected SAN: got " + id->toUri() +
                          ", expected one of " + joinIdentities(s->expected_),
                      X509_V_ERR_CERT_REJECTED);
      }
    } else {
      const std::string& ours = s->context_->credentials().identity().trustDomain;
      if (id->trustDomain != ours) {
        return reject(
            TlsErrc::kPeerIdentityRejected,
            "client identity " + id->toUri() + " is not in our trust domain \"" + ours + "\"",
            X509_V_ERR_CERT_REJECTED);
      }
    }
    s->peerIdentity_ = std::move(*id);
    return 1;
  }

  // "<LABEL> <client_random hex> <secret hex>"
  static void keylog(const SSL* ssl, const char* line) {
    TlsSession* s = fromSsl(ssl);
    if (s == nullptr || line == nullptr) {
      return;
    }
    std::string_view text(line);
    bool clientSecret;
    if (text.starts_with("CLIENT_TRAFFIC_SECRET_0 ")) {
      clientSecret = true;
    } else if (text.starts_with("SERVER_TRAFFIC_SECRET_0 ")) {
      clientSecret = false;
    } else {
      return;
    }
    size_t space = text.rfind(' ');
    std::string_view hex = text.substr(space + 1);
    // Our secret if it is the secret of our own role.
    bool tx = clientSecret == s->client_;
    auto& dst = tx ? s->txSecret_ : s->rxSecret_;
    uint8_t& dstLen = tx ? s->txSecretLen_ : s->rxSecretLen_;
    if (hex.size() % 2 != 0 || hex.size() / 2 > dst.size()) {
      return;
    }
    for (size_t i = 0; i < hex.size() / 2; ++i) {
      int hi = zt::hexDigitValue(hex[2 * i]);
      int lo = zt::hexDigitValue(hex[2 * i + 1]);
      if (hi < 0 || lo < 0) {
        dstLen = 0;
        return;
      }
      dst[i] = static_cast<uint8_t>(hi * 16 + lo);
    }
    dstLen = static_cast<uint8_t>(hex.size() / 2);
  }
};

BIO_METHOD* newSessionBioMethod() {
  // One type index for the process (BIO_get_new_index hands out a new one per call).
  static const int kBioType = BIO_get_new_index() | BIO_TYPE_SOURCE_SINK;
  BIO_METHOD* m = BIO_meth_new(kBioType, "zt-tls-session");
  if (m == nullptr) {
    return nullptr;
  }
  if (BIO_meth_set_write_ex(m, &SessionAccess::bioWrite) != 1 ||
      BIO_meth_set_read_ex(m, &SessionAccess::bioRead) != 1 ||
      BIO_meth_set_ctrl(m, &SessionAccess::bioCtrl) != 1 || BIO_meth_set_create(m, [](BIO* b) {
                                                              BIO_set_init(b, 1);
                                                              return 1;
                                                            }) != 1) {
    BIO_meth_free(m);
    return nullptr;
  }
  return m;
}

int verifyPeerCallback(X509_STORE_CTX* store, void*) {
  return SessionAccess::verify(store);
}

void keylogCallback(const SSL* ssl, const char* line) {
  SessionAccess::keylog(ssl, line);
}

}  // namespace detail

// ---- TlsSession --------------------------------------------------------------------------------

TlsSession::TlsSession(std::shared_ptr<const TlsContext> context, bool client)
    : context_(std::move(context)), client_(client) {}

TlsSession::~TlsSession() {
  SSL_free(ssl_);  // frees the BIO too; it does not write
  OPENSSL_cleanse(txSecret_.data(), txSecret_.size());
  OPENSSL_cleanse(rxSecret_.data(), rxSecret_.size());
}

Result<std::unique_ptr<TlsSession>> TlsSession::client(
    std::shared_ptr<const TlsContext> context, std::vector<Identity> expectedServerIdentities) {
  if (!context || context->role() != TlsContext::Role::kClient) {
    return fail(TlsErrc::kInvalidArgument, "TlsSession::client needs a client TlsContext");
  }
  if (expectedServerIdentities.empty()) {
    return fail(TlsErrc::kInvalidArgument, "TlsSession::client needs expected server identities");
  }
  std::unique_ptr<TlsSession> s(new TlsSession(std::move(context), true));
  s->expected_ = std::move(expectedServerIdentities);
  ZT_TRY_STATUS(s->init());
  return s;
}

Result<std::unique_ptr<TlsSession>> TlsSession::server(std::shared_ptr<const TlsContext> context) {
  if (!context || context->role() != TlsContext::Role::kServer) {
    return fail(TlsErrc::kInvalidArgument, "TlsSession::server needs a server TlsContext");
  }
  std::unique_ptr<TlsSession> s(new TlsSession(std::move(context), false));
  ZT_TRY_STATUS(s->init());
  return s;
}

Status TlsSession::init() {
  clearStaleErrors();
  ssl_ = SSL_new(context_->native());
  if (ssl_ == nullptr) {
    return fail(opensslError(TlsErrc::kInternal, "SSL_new"));
  }
  BIO* bio = BIO_new(context_->bioMethod());
  if (bio == nullptr) {
    return fail(opensslError(TlsErrc::kInternal, "BIO_new"));
  }
  BIO_set_data(bio, this);
  SSL_set_bio(ssl_, bio, bio);  // one reference, shared by both directions
  SSL_set_app_data(ssl_, this);
  if (client_) {
    SSL_set_connect_state(ssl_);
  } else {
    SSL_set_accept_state(ssl_);
  }
  SSL_set_info_callback(ssl_, &detail::SessionAccess::info);
  if (context_->options().captureTrafficSecrets) {
    SSL_set_msg_callback(ssl_, &detail::SessionAccess::msg);
  }
  return ok();
}

Status TlsSession::start(ByteBuffer& ciphertextOut) {
  if (failed_) {
    return fail(TlsErrc::kInvalidState, "session failed");
  }
  if (started_ || !client_) {
    started_ = true;
    return ok();
  }
  started_ = true;
  clearStaleErrors();
  out_ = &ciphertextOut;
  int r = SSL_do_handshake(ssl_);
  out_ = nullptr;
  if (r == 1) {
    return ok();  // cannot happen for a client before any input
  }
  int e = SSL_get_error(ssl_, r);
  if (e == SSL_ERROR_WANT_READ) {
    return ok();
  }
  return fail(failWith(e, true));
}

Result<TlsSession::FeedResult> TlsSession::feed(std::span<const uint8_t> ciphertext,
                                                ByteBuffer& plaintextOut,
                                                ByteBuffer& ciphertextOut) {
  if (failed_) {
    return fail(TlsErrc::kInvalidState, "session failed");
  }
  if (peerClosed_) {
    return FeedResult{established_, true};  // nothing may follow close_notify
  }
  clearStaleErrors();
  started_ = true;
  in_ = ciphertext;
  out_ = &ciphertextOut;
  auto result = feedOne(plaintextOut);
  // All input was handed to OpenSSL unless the session failed or the peer closed.
  ZT_ASSERT(in_.empty() || failed_ || peerClosed_);
  in_ = {};
  out_ = nullptr;
  return result;
}

Result<TlsSession::FeedResult> TlsSession::feed(ByteBuffer& ciphertext, ByteBuffer& plaintextOut,
                                                ByteBuffer& ciphertextOut) {
  FeedResult result{established_, peerClosed_};
  do {
    auto chunk = ciphertext.front();
    auto r = feed(chunk, plaintextOut, ciphertextOut);
    ciphertext.drain(chunk.size());
    if (!r) {
      ciphertext.clear();  // the session is dead; nothing more will be read
      return r;
    }
    result = *r;
  } while (!ciphertext.empty() && !result.peerClosed);
  ciphertext.clear();
  return result;
}

Result<TlsSession::FeedResult> TlsSession::feedOne(ByteBuffer& plaintextOut) {
  if (!established_) {
    int r = SSL_do_handshake(ssl_);
    if (r != 1) {
      int e = SSL_get_error(ssl_, r);
      if (e == SSL_ERROR_WANT_READ) {
        return FeedResult{false, false};
      }
      return fail(failWith(e, true));
    }
    ZT_TRY_STATUS(onHandshakeComplete());
  }
  ZT_TRY_STATUS(readRecords(plaintextOut));
  return FeedResult{true, peerClosed_};
}

Status TlsSession::onHandshakeComplete() {
  // Belt and braces: the verify callback enforced all of this already.
  const unsigned char* proto = nullptr;
  unsigned int protoLen = 0;
  SSL_get0_alpn_selected(ssl_, &proto, &protoLen);
  if (protoLen != 2 || std::memcmp(proto, "h2", 2) != 0) {
    failed_ = true;
    drainOpenSslErrors();
    return fail(TlsErrc::kAlpnMismatch, "handshake completed without ALPN h2");
  }
  if (SSL_get_verify_result(ssl_) != X509_V_OK || SSL_get0_peer_certificate(ssl_) == nullptr ||
      peerIdentity_.trustDomain.empty()) {
    failed_ = true;
    drainOpenSslErrors();
    return fail(TlsErrc::kPeerCertificateInvalid, "handshake completed without a verified peer");
  }
  established_ = true;
  // Anything queued by successful verification (e.g. ignored lookups) must not linger.
  drainOpenSslErrors();
  return ok();
}

Status TlsSession::readRecords(ByteBuffer& plaintextOut) {
  while (true) {
    if (in_.empty() && SSL_has_pending(ssl_) == 0) {
      return ok();
    }
    std::span<uint8_t> space = plaintextOut.reserve(1);
    if (space.size() < kMinReadSpace) {
      space = plaintextOut.reserve(ByteBuffer::kBlockSize);
    }
    size_t n = 0;
    int r = SSL_read_ex(ssl_, space.data(), space.size(), &n);
    if (r == 1) {
      plaintextOut.commit(n);
      continue;
    }
    int e = SSL_get_error(ssl_, r);
    if (e == SSL_ERROR_WANT_READ) {
      return ok();
    }
    if (e == SSL_ERROR_ZERO_RETURN) {
      peerClosed_ = true;
      drainOpenSslErrors();
      return ok();
    }
    return fail(failWith(e, false));
  }
}

Status TlsSession::checkWritable() const {
  if (failed_) {
    return fail(TlsErrc::kInvalidState, "session failed");
  }
  if (!established_) {
    return fail(TlsErrc::kInvalidState, "write before the handshake completed");
  }
  if (closeSent_) {
    return fail(TlsErrc::kInvalidState, "write after close");
  }
  return ok();
}

Status TlsSession::writeSpan(std::span<const uint8_t> plaintext) {
  while (!plaintext.empty()) {
    size_t n = 0;
    int r = SSL_write_ex(ssl_, plaintext.data(), plaintext.size(), &n);
    if (r != 1) {
      return fail(failWith(SSL_get_error(ssl_, r), false));
    }
    plaintext = plaintext.subspan(n);
  }
  return ok();
}

Status TlsSession::write(std::span<const uint8_t> plaintext, ByteBuffer& ciphertextOut) {
  ZT_TRY_STATUS(checkWritable());
  clearStaleErrors();
  out_ = &ciphertextOut;
  Status st = writeSpan(plaintext);
  out_ = nullptr;
  return st;
}

Status TlsSession::write(ByteBuffer& plaintext, ByteBuffer& ciphertextOut) {
  ZT_TRY_STATUS(checkWritable());
  clearStaleErrors();
  out_ = &ciphertextOut;
  Status st = ok();
  while (!plaintext.empty()) {
    std::span<const uint8_t> chunk = plaintext.front();
    if (chunk.size() < kCoalesceBelow && chunk.size() < plaintext.size()) {
      auto& scratch = coalesceScratch();
      size_t n = plaintext.copyOut(0, {scratch.data(), std::min(scratch.size(), plaintext.size())});
      st = writeSpan({scratch.data(), n});
      if (!st) {
        break;
      }
      plaintext.drain(n);
    } else {
      st = writeSpan(chunk);
      if (!st) {
        break;
      }
      plaintext.drain(chunk.size());
    }
  }
  out_ = nullptr;
  return st;
}

void TlsSession::close(ByteBuffer& ciphertextOut) {
  if (closeSent_ || failed_ || !established_) {
    return;
  }
  closeSent_ = true;
  clearStaleErrors();
  out_ = &ciphertextOut;
  // 0 = close_notify sent, peer's not yet received; 1 = both done; <0 = error (nothing to do).
  (void)SSL_shutdown(ssl_);
  out_ = nullptr;
  drainOpenSslErrors();
}

std::string_view TlsSession::alpn() const {
  const unsigned char* proto = nullptr;
  unsigned int len = 0;
  SSL_get0_alpn_selected(ssl_, &proto, &len);
  return {reinterpret_cast<const char*>(proto), len};
}

int TlsSession::version() const {
  return established_ ? SSL_version(ssl_) : 0;
}

std::string_view TlsSession::cipherName() const {
  const SSL_CIPHER* c = established_ ? SSL_get_current_cipher(ssl_) : nullptr;
  return c != nullptr ? SSL_CIPHER_get_name(c) : "";
}

uint16_t TlsSession::cipherSuiteId() const {
  const SSL_CIPHER* c = established_ ? SSL_get_current_cipher(ssl_) : nullptr;
  return c != nullptr ? SSL_CIPHER_get_protocol_id(c) : 0;
}

Error TlsSession::failWith(int sslError, bool inHandshake) {
  failed_ = true;
  std::string queue = drainOpenSslErrors();
  TlsErrc code = inHandshake ? TlsErrc::kHandshakeFailed : TlsErrc::kRecordError;
  std::string detail;
  if (!verifyError_.empty()) {
    code = verifyErrc_;
    detail = verifyError_;
  } else if (alertReceived_ >= 0) {
    detail = std::string("peer sent alert ") + SSL_alert_desc_string_long(alertReceived_);
  } else if (alertSent_ >= 0) {
    detail = std::string("sent alert ") + SSL_alert_desc_string_long(alertSent_);
  } else if (sslError == SSL_ERROR_SYSCALL) {
    detail = "unexpected end of input";
  }
  if (!queue.empty()) {
    detail += detail.empty() ? "" : " | ";
    detail += queue;
  }
  return Error(code, std::move(detail));
}

Result<TlsSession::TrafficState> TlsSession::trafficState() const {
  if (!context_->options().captureTrafficSecrets) {
    return fail(TlsErrc::kKernelTls, "traffic secrets not captured (TlsOptions)");
  }
  if (!established_ || failed_ || closeSent_ || peerClosed_) {
    return fail(TlsErrc::kKernelTls, "session is not established and open");
  }
  if (SSL_version(ssl_) != TLS1_3_VERSION) {
    return fail(TlsErrc::kKernelTls, "kernel TLS hand-off supports TLS 1.3 only");
  }
  if (keyUpdated_) {
    return fail(TlsErrc::kKernelTls, "a KeyUpdate happened; traffic secrets are stale");
  }
  if (SSL_has_pending(ssl_) != 0) {
    return fail(TlsErrc::kKernelTls, "OpenSSL holds unprocessed input");
  }
  if (txSecretLen_ == 0 || txSecretLen_ != rxSecretLen_) {
    return fail(TlsErrc::kKernelTls, "application traffic secrets missing");
  }
  TrafficState st;
  st.cipherSuite = cipherSuiteId();
  st.txSecret = std::span(txSecret_.data(), txSecretLen_);
  st.rxSecret = std::span(rxSecret_.data(), rxSecretLen_);
  st.txSeq = txRecords_;
  st.rxSeq = rxRecords_;
  return st;
}

}  // namespace zt::tls
