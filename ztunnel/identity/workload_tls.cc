#include "ztunnel/identity/workload_tls.h"

namespace zt::identity {

Result<std::shared_ptr<const WorkloadTls>> WorkloadTls::make(
    std::shared_ptr<const tls::Credentials> credentials, const tls::TlsOptions& options) {
  auto client = tls::TlsContext::makeClient(credentials, options);
  if (!client) {
    return fail(std::move(client).error());
  }
  auto server = tls::TlsContext::makeServer(credentials, options);
  if (!server) {
    return fail(std::move(server).error());
  }
  auto out = std::make_shared<WorkloadTls>();
  out->credentials = std::move(credentials);
  out->client = std::move(*client);
  out->server = std::move(*server);
  return std::shared_ptr<const WorkloadTls>(std::move(out));
}

}  // namespace zt::identity
