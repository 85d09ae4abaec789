#pragma once

// The TLS material of the proxied workload identity, ready for the data path, and the store that
// publishes it to worker threads.
//
// Rotation: a new certificate becomes a new WorkloadTls (new contexts); workers pick up the
// current one whenever they create a TLS session, and live sessions keep the contexts they were
// created with, so rotation never drops a tunnel.

#include <atomic>
#include <memory>

#include "ztunnel/core/result.h"
#include "ztunnel/tls/certificate.h"
#include "ztunnel/tls/tls_context.h"

namespace zt::identity {

struct WorkloadTls {
  std::shared_ptr<const tls::Credentials> credentials;
  std::shared_ptr<const tls::TlsContext> client;  // for outbound HBONE connections
  std::shared_ptr<const tls::TlsContext> server;  // for the inbound 15008 listener

  static Result<std::shared_ptr<const WorkloadTls>> make(
      std::shared_ptr<const tls::Credentials> credentials, const tls::TlsOptions& options);
};

// Thread: publish() from the control thread, current() from any thread; lock-free reads.
class CredentialStore {
 public:
  void publish(std::shared_ptr<const WorkloadTls> tls) {
    current_.store(std::move(tls), std::memory_order_release);
  }
  // Null until the first publish.
  std::shared_ptr<const WorkloadTls> current() const {
    return current_.load(std::memory_order_acquire);
  }

 private:
  std::atomic<std::shared_ptr<const WorkloadTls>> current_;
};

}  // namespace zt::identity
