#pragma once

// TestPki: a mesh PKI minted in memory at test time (no key material is committed): one root CA for
// a trust domain (optionally an intermediate CA under it) and workload certificates for any
// (namespace, service account), with WorkloadCertOptions for deliberately broken ones.
//
// Used by tls unit tests, hbone end-to-end tests, proxy integration and netns tests. Failures to
// mint throw std::runtime_error (GoogleTest reports them as test failures).
//
// Thread: const methods are safe to call concurrently.

#include <memory>
#include <string>
#include <string_view>

#include "ztunnel/tls/cert_builder.h"
#include "ztunnel/tls/certificate.h"
#include "ztunnel/tls/spiffe.h"
#include "ztunnel/tls/tls_context.h"

namespace zt::testing {

class TestPki {
 public:
  struct Options {
    std::string trustDomain = "cluster.local";
    // Issue workload certificates from an intermediate CA (chain = leaf + intermediate).
    bool useIntermediate = false;
    std::chrono::seconds rootValidity = std::chrono::hours(24 * 365);
  };

  TestPki() : TestPki(Options{}) {}
  explicit TestPki(std::string trustDomain) : TestPki(Options{std::move(trustDomain)}) {}
  explicit TestPki(Options options);

  const std::string& trustDomain() const { return options_.trustDomain; }
  const tls::CertAndKeyPem& root() const { return root_; }
  // PEM of every trusted root (the root plus any added with addTrustedRoot).
  const std::string& rootsPem() const { return rootsPem_; }
  // Trust another PKI's root too (e.g. root rotation with an overlap bundle).
  void addTrustedRoot(const std::string& pem) { rootsPem_ += pem; }

  tls::Identity identity(std::string_view ns, std::string_view sa) const {
    return tls::Identity::make(options_.trustDomain, ns, sa);
  }
  // Options for the normal certificate of ns/sa (one SPIFFE URI SAN); tweak and pass to bundle().
  tls::WorkloadCertOptions options(std::string_view ns, std::string_view sa) const {
    return tls::workloadCertOptions(identity(ns, sa));
  }

  tls::CertificateBundle bundle(std::string_view ns, std::string_view sa) const {
    return bundle(options(ns, sa));
  }
  tls::CertificateBundle bundle(const tls::WorkloadCertOptions& options) const;

  // Parsed credentials. Throws if the bundle is not loadable (e.g. no URI SAN): build those with
  // bundle() and test Credentials::fromPem directly.
  std::shared_ptr<const tls::Credentials> credentials(std::string_view ns,
                                                      std::string_view sa) const {
    return credentials(options(ns, sa));
  }
  std::shared_ptr<const tls::Credentials> credentials(
      const tls::WorkloadCertOptions& options) const;

  std::shared_ptr<const tls::TlsContext> clientContext(std::string_view ns, std::string_view sa,
                                                       tls::TlsOptions tlsOptions = {}) const;
  std::shared_ptr<const tls::TlsContext> serverContext(std::string_view ns, std::string_view sa,
                                                       tls::TlsOptions tlsOptions = {}) const;
  static std::shared_ptr<const tls::TlsContext> clientContext(
      std::shared_ptr<const tls::Credentials> creds, tls::TlsOptions tlsOptions = {});
  static std::shared_ptr<const tls::TlsContext> serverContext(
      std::shared_ptr<const tls::Credentials> creds, tls::TlsOptions tlsOptions = {});

  // The issuing CA (the intermediate if useIntermediate, else the root) and its chain above it.
  const tls::CertAndKeyPem& issuer() const { return useIntermediate() ? intermediate_ : root_; }
  bool useIntermediate() const { return options_.useIntermediate; }

 private:
  Options options_;
  tls::CertAndKeyPem root_;
  tls::CertAndKeyPem intermediate_;
  std::string rootsPem_;
};

}  // namespace zt::testing
