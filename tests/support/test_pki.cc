#include "tests/support/test_pki.h"

#include <stdexcept>

namespace zt::testing {

namespace {
template <class T>
T orThrow(Result<T> r, std::string_view what) {
  if (!r) {
    throw std::runtime_error(std::string(what) + ": " + r.error().message());
  }
  return std::move(*r);
}
}  // namespace

TestPki::TestPki(Options options) : options_(std::move(options)) {
  root_ = orThrow(tls::mintRoot(options_.trustDomain, options_.rootValidity), "TestPki root");
  rootsPem_ = root_.certPem;
  if (options_.useIntermediate) {
    tls::IntermediateOptions io;
    io.organization = options_.trustDomain;
    intermediate_ =
        orThrow(tls::issueIntermediate(root_.certPem, root_.keyPem, io), "TestPki intermediate");
  }
}

tls::CertificateBundle TestPki::bundle(const tls::WorkloadCertOptions& options) const {
  const tls::CertAndKeyPem& ca = issuer();
  auto issued = orThrow(tls::issueWorkload(ca.certPem, ca.keyPem, options), "TestPki workload");
  return tls::CertificateBundle{issued.chainPem, issued.keyPem, rootsPem_};
}

std::shared_ptr<const tls::Credentials> TestPki::credentials(
    const tls::WorkloadCertOptions& options) const {
  return orThrow(tls::Credentials::fromPem(bundle(options)), "TestPki credentials");
}

std::shared_ptr<const tls::TlsContext> TestPki::clientContext(
    std::shared_ptr<const tls::Credentials> creds, tls::TlsOptions tlsOptions) {
  return orThrow(tls::TlsContext::makeClient(std::move(creds), tlsOptions), "client context");
}

std::shared_ptr<const tls::TlsContext> TestPki::serverContext(
    std::shared_ptr<const tls::Credentials> creds, tls::TlsOptions tlsOptions) {
  return orThrow(tls::TlsContext::makeServer(std::move(creds), tlsOptions), "server context");
}

std::shared_ptr<const tls::TlsContext> TestPki::clientContext(std::string_view ns,
                                                              std::string_view sa,
                                                              tls::TlsOptions tlsOptions) const {
  return clientContext(credentials(ns, sa), tlsOptions);
}

std::shared_ptr<const tls::TlsContext> TestPki::serverContext(std::string_view ns,
                                                              std::string_view sa,
                                                              tls::TlsOptions tlsOptions) const {
  return serverContext(credentials(ns, sa), tlsOptions);
}

}  // namespace zt::testing
