// libFuzzer target: arbitrary bytes fed to a server TlsSession (ClientHello parsing, record layer,
// our ALPN/ClientHello callbacks). The first input byte chooses how the rest is split into feed()
// calls. Properties: no crash/UB/leak, nothing decrypted without a handshake, and the thread's
// OpenSSL error queue is empty afterwards.

#include <openssl/err.h>

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <memory>

#include "ztunnel/core/byte_buffer.h"
#include "ztunnel/tls/cert_builder.h"
#include "ztunnel/tls/certificate.h"
#include "ztunnel/tls/tls_context.h"
#include "ztunnel/tls/tls_session.h"

namespace {

std::shared_ptr<const zt::tls::TlsContext> makeServerContext() {
  using namespace zt::tls;
  auto root = mintRoot("cluster.local", std::chrono::hours(24));
  if (!root) {
    std::abort();
  }
  auto leaf = issueWorkload(root->certPem, root->keyPem,
                            workloadCertOptions(Identity::make("cluster.local", "ns", "server")));
  if (!leaf) {
    std::abort();
  }
  auto creds = Credentials::fromPem({leaf->chainPem, leaf->keyPem, root->certPem});
  if (!creds) {
    std::abort();
  }
  auto ctx = TlsContext::makeServer(*creds, TlsOptions{.allowTls12 = true});
  if (!ctx) {
    std::abort();
  }
  return *ctx;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const std::shared_ptr<const zt::tls::TlsContext> ctx = makeServerContext();
  if (size == 0) {
    return 0;
  }
  size_t chunk = 1 + data[0] * 7;
  ++data;
  --size;
  auto session = zt::tls::TlsSession::server(ctx);
  if (!session) {
    std::abort();
  }
  zt::ByteBuffer plaintext;
  zt::ByteBuffer out;
  while (size > 0) {
    size_t n = chunk < size ? chunk : size;
    auto r = (*session)->feed(std::span(data, n), plaintext, out);
    data += n;
    size -= n;
    if (!r) {
      break;
    }
    if (r->handshakeDone) {
      std::abort();  // impossible without a client certificate signed by our root
    }
  }
  if (!plaintext.empty() || ERR_peek_error() != 0) {
    std::abort();
  }
  return 0;
}
