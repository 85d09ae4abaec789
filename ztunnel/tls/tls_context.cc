#include "ztunnel/tls/tls_context.h"

#include <openssl/ssl.h>
#include <openssl/tls1.h>

#include <cstring>

#include "ztunnel/tls/openssl_util.h"
#include "ztunnel/tls/session_hooks.h"

namespace zt::tls {

namespace {

constexpr unsigned char kAlpnH2[] = {2, 'h', '2'};

// Server: pick "h2" or fail the handshake with no_application_protocol.
int selectAlpn(SSL*, const unsigned char** out, unsigned char* outlen, const unsigned char* in,
               unsigned int inlen, void*) {
  unsigned char* selected = nullptr;
  if (SSL_select_next_proto(&selected, outlen, kAlpnH2, sizeof(kAlpnH2), in, inlen) ==
      OPENSSL_NPN_NEGOTIATED) {
    *out = selected;
    return SSL_TLSEXT_ERR_OK;
  }
  return SSL_TLSEXT_ERR_ALERT_FATAL;
}

// Server: the ALPN select callback is not called at all when the ClientHello has no ALPN
// extension, so require the extension here (HBONE is h2-only; never fall back).
int checkClientHello(SSL* ssl, int* alert, void*) {
  const unsigned char* ext = nullptr;
  size_t len = 0;
  if (SSL_client_hello_get0_ext(ssl, TLSEXT_TYPE_application_layer_protocol_negotiation, &ext,
                                &len) != 1) {
    *alert = SSL_AD_NO_APPLICATION_PROTOCOL;
    return SSL_CLIENT_HELLO_ERROR;
  }
  return SSL_CLIENT_HELLO_SUCCESS;
}

}  // namespace

TlsContext::TlsContext(Role role, std::shared_ptr<const Credentials> credentials,
                       TlsOptions options)
    : role_(role), options_(options), credentials_(std::move(credentials)) {}

TlsContext::~TlsContext() {
  SSL_CTX_free(ctx_);
  BIO_meth_free(bioMethod_);
}

Result<std::shared_ptr<const TlsContext>> TlsContext::makeClient(
    std::shared_ptr<const Credentials> credentials, TlsOptions options) {
  return make(Role::kClient, std::move(credentials), options);
}

Result<std::shared_ptr<const TlsContext>> TlsContext::makeServer(
    std::shared_ptr<const Credentials> credentials, TlsOptions options) {
  return make(Role::kServer, std::move(credentials), options);
}

Result<std::shared_ptr<const TlsContext>> TlsContext::make(
    Role role, std::shared_ptr<const Credentials> credentials, TlsOptions options) {
  if (!credentials) {
    return fail(TlsErrc::kInvalidArgument, "TlsContext needs credentials");
  }
  ERR_clear_error();
  std::shared_ptr<TlsContext> ctx(new TlsContext(role, std::move(credentials), options));
  ZT_TRY_STATUS(ctx->configure());
  return std::shared_ptr<const TlsContext>(std::move(ctx));
}

Status TlsContext::configure() {
  constexpr auto kErr = TlsErrc::kContextSetup;
  const bool server = role_ == Role::kServer;
  ctx_ = SSL_CTX_new(server ? TLS_server_method() : TLS_client_method());
  bioMethod_ = detail::newSessionBioMethod();
  if (ctx_ == nullptr || bioMethod_ == nullptr) {
    return fail(opensslError(kErr, "SSL_CTX_new"));
  }
  // Versions (this overrides the system openssl.cnf MinProtocol).
  int minVersion = options_.allowTls12 ? TLS1_2_VERSION : TLS1_3_VERSION;
  if (SSL_CTX_set_min_proto_version(ctx_, minVersion) != 1 ||
      SSL_CTX_set_max_proto_version(ctx_, TLS1_3_VERSION) != 1) {
    return fail(opensslError(kErr, "set protocol versions"));
  }
  if (SSL_CTX_set_ciphersuites(ctx_, kTls13CipherSuites) != 1 ||
      SSL_CTX_set_cipher_list(ctx_, kTls12CipherList) != 1) {
    return fail(opensslError(kErr, "set cipher suites"));
  }
  if (SSL_CTX_set1_groups_list(ctx_, kGroups) != 1) {
    return fail(opensslError(kErr, "set groups"));
  }

  // No resumption of any kind, no renegotiation, no compression.
  SSL_CTX_set_options(ctx_, SSL_OP_NO_TICKET | SSL_OP_NO_RENEGOTIATION | SSL_OP_NO_COMPRESSION |
                                SSL_OP_CIPHER_SERVER_PREFERENCE);
  SSL_CTX_set_session_cache_mode(ctx_, SSL_SESS_CACHE_OFF);
  if (SSL_CTX_set_num_tickets(ctx_, 0) != 1) {
    return fail(opensslError(kErr, "set num tickets"));
  }

  // Our own certificate chain and key. The chain is sent exactly as given (leaf + intermediates),
  // never extended from the trust store.
  const Credentials& creds = *credentials_;
  if (SSL_CTX_use_certificate(ctx_, creds.leaf()) != 1 ||
      SSL_CTX_use_PrivateKey(ctx_, creds.privateKey()) != 1 ||
      SSL_CTX_set1_chain(ctx_, creds.intermediates()) != 1 ||
      SSL_CTX_check_private_key(ctx_) != 1) {
    return fail(opensslError(kErr, "install certificate chain and key"));
  }
  SSL_CTX_set_mode(ctx_, SSL_MODE_NO_AUTO_CHAIN | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
  if (options_.releaseIdleBuffers) {
    SSL_CTX_set_mode(ctx_, SSL_MODE_RELEASE_BUFFERS);
  }

  // Peer verification: the Credentials' roots, our callback for chain + SPIFFE checks.
  if (SSL_CTX_set1_verify_cert_store(ctx_, creds.trustStore()) != 1) {
    return fail(opensslError(kErr, "set verify store"));
  }
  SSL_CTX_set_verify(
      ctx_, server ? SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT : SSL_VERIFY_PEER, nullptr);
  SSL_CTX_set_cert_verify_callback(ctx_, &detail::verifyPeerCallback, nullptr);

  // ALPN.
  if (server) {
    SSL_CTX_set_alpn_select_cb(ctx_, &selectAlpn, nullptr);
    SSL_CTX_set_client_hello_cb(ctx_, &checkClientHello, nullptr);
  } else if (SSL_CTX_set_alpn_protos(ctx_, kAlpnH2, sizeof(kAlpnH2)) != 0) {
    // Note: SSL_CTX_set_alpn_protos returns 0 on success.
    return fail(opensslError(kErr, "set ALPN"));
  }

  // Bulk transfer: let OpenSSL pull as much ciphertext per BIO read as fits its buffer.
  SSL_CTX_set_read_ahead(ctx_, 1);
  SSL_CTX_set_default_read_buffer_len(ctx_, kReadBufferSize);

  if (options_.captureTrafficSecrets) {
    SSL_CTX_set_keylog_callback(ctx_, &detail::keylogCallback);
  }
  drainOpenSslErrors();
  return ok();
}

}  // namespace zt::tls
