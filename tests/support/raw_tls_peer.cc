#include "tests/support/raw_tls_peer.h"

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/tls1.h>

#include <cstring>
#include <stdexcept>

namespace zt::testing {

namespace {

std::string errors() {
  std::string out;
  unsigned long e;
  while ((e = ERR_get_error()) != 0) {
    char buf[256];
    ERR_error_string_n(e, buf, sizeof(buf));
    if (!out.empty()) {
      out += "; ";
    }
    out += buf;
  }
  return out;
}

[[noreturn]] void die(const std::string& what) {
  throw std::runtime_error("RawTlsPeer: " + what + ": " + errors());
}

int exIndex() {
  static const int index = SSL_get_ex_new_index(0, nullptr, nullptr, nullptr, nullptr);
  return index;
}

RawTlsPeer* self(SSL* ssl) {
  return static_cast<RawTlsPeer*>(SSL_get_ex_data(ssl, exIndex()));
}

}  // namespace

RawTlsPeer::RawTlsPeer(const RawPeerConfig& config) : alpnServer_(config.alpn) {
  ERR_clear_error();
  ctx_ = SSL_CTX_new(config.server ? TLS_server_method() : TLS_client_method());
  if (ctx_ == nullptr) {
    die("SSL_CTX_new");
  }
  SSL_CTX_set_min_proto_version(ctx_, config.minVersion);
  SSL_CTX_set_max_proto_version(ctx_, config.maxVersion);
  if (!config.tls13Suites.empty() &&
      SSL_CTX_set_ciphersuites(ctx_, config.tls13Suites.c_str()) != 1) {
    die("ciphersuites");
  }
  if (!config.tls12Ciphers.empty() &&
      SSL_CTX_set_cipher_list(ctx_, config.tls12Ciphers.c_str()) != 1) {
    die("cipher list");
  }
  const auto& creds = config.credentials;
  if (!creds.certChainPem.empty()) {
    BIO* bio =
        BIO_new_mem_buf(creds.certChainPem.data(), static_cast<int>(creds.certChainPem.size()));
    X509* leaf = PEM_read_bio_X509(bio, nullptr, nullptr, nullptr);
    if (leaf == nullptr || SSL_CTX_use_certificate(ctx_, leaf) != 1) {
      die("certificate");
    }
    X509_free(leaf);
    while (X509* extra = PEM_read_bio_X509(bio, nullptr, nullptr, nullptr)) {
      SSL_CTX_add0_chain_cert(ctx_, extra);
    }
    ERR_clear_error();
    BIO_free(bio);
    bio = BIO_new_mem_buf(creds.privateKeyPem.data(), static_cast<int>(creds.privateKeyPem.size()));
    EVP_PKEY* key = PEM_read_bio_PrivateKey(bio, nullptr, nullptr, nullptr);
    BIO_free(bio);
    if (key == nullptr || SSL_CTX_use_PrivateKey(ctx_, key) != 1) {
      die("private key");
    }
    EVP_PKEY_free(key);
  }
  int verifyMode = SSL_VERIFY_NONE;
  if (!creds.rootCertsPem.empty()) {
    X509_STORE* store = SSL_CTX_get_cert_store(ctx_);
    BIO* bio =
        BIO_new_mem_buf(creds.rootCertsPem.data(), static_cast<int>(creds.rootCertsPem.size()));
    while (X509* root = PEM_read_bio_X509(bio, nullptr, nullptr, nullptr)) {
      X509_STORE_add_cert(store, root);
      X509_free(root);
    }
    ERR_clear_error();
    BIO_free(bio);
    verifyMode = SSL_VERIFY_PEER;
  }
  if (config.server && config.requireClientCert) {
    verifyMode = SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT;
  }
  SSL_CTX_set_verify(ctx_, verifyMode, nullptr);

  if (config.server) {
    SSL_CTX_set_num_tickets(ctx_, static_cast<size_t>(config.numTickets));
    SSL_CTX_set_client_hello_cb(
        ctx_,
        [](SSL* ssl, int*, void*) -> int {
          RawTlsPeer* p = self(ssl);
          p->sawClientHello = true;
          const unsigned char* ext = nullptr;
          size_t len = 0;
          p->clientHelloHadSni =
              SSL_client_hello_get0_ext(ssl, TLSEXT_TYPE_server_name, &ext, &len) == 1;
          int* exts = nullptr;
          size_t n = 0;
          if (SSL_client_hello_get1_extensions_present(ssl, &exts, &n) == 1) {
            p->clientHelloExtensions.assign(exts, exts + n);
            OPENSSL_free(exts);
          }
          return SSL_CLIENT_HELLO_SUCCESS;
        },
        nullptr);
    if (!alpnServer_.empty()) {
      SSL_CTX_set_alpn_select_cb(
          ctx_,
          [](SSL* ssl, const unsigned char** out, unsigned char* outlen, const unsigned char* in,
             unsigned int inlen, void*) -> int {
            RawTlsPeer* p = self(ssl);
            for (const auto& want : p->alpnServer_) {
              for (unsigned int i = 0; i < inlen;) {
                unsigned int l = in[i];
                if (i + 1 + l <= inlen && l == want.size() &&
                    std::memcmp(in + i + 1, want.data(), l) == 0) {
                  *out = in + i + 1;
                  *outlen = static_cast<unsigned char>(l);
                  return SSL_TLSEXT_ERR_OK;
                }
                i += 1 + l;
              }
            }
            return SSL_TLSEXT_ERR_NOACK;
          },
          nullptr);
    }
  } else {
    if (!config.alpn.empty()) {
      std::string wire;
      for (const auto& p : config.alpn) {
        wire += static_cast<char>(p.size());
        wire += p;
      }
      SSL_CTX_set_alpn_protos(ctx_, reinterpret_cast<const unsigned char*>(wire.data()),
                              static_cast<unsigned int>(wire.size()));
    }
    SSL_CTX_set_session_cache_mode(ctx_, SSL_SESS_CACHE_CLIENT | SSL_SESS_CACHE_NO_INTERNAL_STORE);
    SSL_CTX_sess_set_new_cb(ctx_, [](SSL* ssl, SSL_SESSION*) -> int {
      ++self(ssl)->newSessions;
      return 0;  // we did not keep a reference
    });
  }

  ssl_ = SSL_new(ctx_);
  if (ssl_ == nullptr) {
    die("SSL_new");
  }
  SSL_set_ex_data(ssl_, exIndex(), this);
  rbio_ = BIO_new(BIO_s_mem());
  wbio_ = BIO_new(BIO_s_mem());
  SSL_set_bio(ssl_, rbio_, wbio_);
  if (config.server) {
    SSL_set_accept_state(ssl_);
  } else {
    if (!config.sni.empty()) {
      SSL_set_tlsext_host_name(ssl_, config.sni.c_str());
    }
    SSL_set_connect_state(ssl_);
    drive();  // emits the ClientHello
  }
}

RawTlsPeer::~RawTlsPeer() {
  SSL_free(ssl_);
  SSL_CTX_free(ctx_);
}

void RawTlsPeer::flush() {
  char buf[16384];
  int n;
  while ((n = BIO_read(wbio_, buf, sizeof(buf))) > 0) {
    out_.append(std::string_view(buf, static_cast<size_t>(n)));
  }
}

void RawTlsPeer::drive() {
  if (failed_) {
    return;
  }
  ERR_clear_error();
  if (!established()) {
    int r = SSL_do_handshake(ssl_);
    if (r != 1) {
      int e = SSL_get_error(ssl_, r);
      if (e != SSL_ERROR_WANT_READ) {
        failed_ = true;
        error_ = errors();
      }
      flush();
      return;
    }
  }
  char buf[16384];
  while (true) {
    int n = SSL_read(ssl_, buf, sizeof(buf));
    if (n > 0) {
      plain_.append(std::string_view(buf, static_cast<size_t>(n)));
      continue;
    }
    int e = SSL_get_error(ssl_, n);
    if (e != SSL_ERROR_WANT_READ && e != SSL_ERROR_ZERO_RETURN) {
      failed_ = true;
      error_ = errors();
    }
    break;
  }
  flush();
}

bool RawTlsPeer::step(ByteBuffer& in) {
  std::string bytes = in.toString();
  in.clear();
  if (!bytes.empty()) {
    BIO_write(rbio_, bytes.data(), static_cast<int>(bytes.size()));
  }
  drive();
  return !failed_;
}

bool RawTlsPeer::write(std::string_view data) {
  int n = SSL_write(ssl_, data.data(), static_cast<int>(data.size()));
  flush();
  return n == static_cast<int>(data.size());
}

void RawTlsPeer::shutdown() {
  SSL_shutdown(ssl_);
  flush();
}

std::string RawTlsPeer::alpn() const {
  const unsigned char* p = nullptr;
  unsigned int len = 0;
  SSL_get0_alpn_selected(ssl_, &p, &len);
  return std::string(reinterpret_cast<const char*>(p), len);
}

RawOutcome pumpRaw(tls::TlsSession& ours, RawTlsPeer& peer, int maxRounds,
                   ByteBuffer* oursPlaintext) {
  RawOutcome out;
  ByteBuffer toPeer;
  ByteBuffer sink;
  ByteBuffer& plain = oursPlaintext != nullptr ? *oursPlaintext : sink;
  if (ours.isClient()) {
    out.ours = ours.start(toPeer);
  }
  for (int round = 0; round < maxRounds; ++round) {
    bool moved = false;
    if (!toPeer.empty() && !peer.failed()) {
      moved = true;
      peer.step(toPeer);
    }
    if (!peer.out().empty() && out.ours) {
      moved = true;
      auto r = ours.feed(peer.out(), plain, toPeer);
      if (!r) {
        out.ours = tl::unexpected(r.error());
      }
    }
    if (!moved) {
      break;
    }
  }
  out.oursEstablished = ours.established();
  out.peerEstablished = peer.established() && !peer.failed();
  out.peerFailed = peer.failed();
  out.peerError = peer.error();
  return out;
}

}  // namespace zt::testing
