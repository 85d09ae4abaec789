#pragma once

// Minting certificates: self-signed mesh roots, intermediates, workload leaves, CSRs (Istio's CSR
// format, §3.6) and signing of CSRs. Used by the test PKI, by fake CAs in integration tests and by
// the `ztunnel certs` CLI, so everything here produces what a real mesh CA would:
//   - keys: ECDSA P-256, written as unencrypted PKCS#8 PEM;
//   - signatures: ECDSA with SHA-256; serials: 128 random bits (positive, non-zero); X.509 v3;
//   - roots: subject O=<trust domain>, basicConstraints critical CA:TRUE, keyUsage critical
//     keyCertSign|cRLSign, subject and authority key identifiers;
//   - workload leaves: like istiod's: an EMPTY subject with a CRITICAL subjectAltName holding the
//     SPIFFE URI (RFC 5280 §4.2.1.6), basicConstraints critical CA:FALSE, keyUsage critical
//     digitalSignature|keyEncipherment, extendedKeyUsage serverAuth+clientAuth, authority key id.
//     Options can deviate from that profile (zero/two URI SANs, DNS SANs, CA:TRUE, one EKU,
//     validity in the past or future, a common name) so tests can build invalid certificates.
//
// Thread: free functions without shared state; safe from any thread. Not for the data path
// (each call generates keys and signs).

#include <chrono>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "ztunnel/core/result.h"
#include "ztunnel/tls/certificate.h"
#include "ztunnel/tls/spiffe.h"
#include "ztunnel/tls/tls_error.h"

namespace zt::tls {

struct CertAndKeyPem {
  std::string certPem;
  std::string keyPem;  // PKCS#8
};

// A self-signed CA certificate for `trustDomain`, valid from one minute ago for `validity`.
Result<CertAndKeyPem> mintRoot(std::string_view trustDomain, std::chrono::seconds validity);

struct IntermediateOptions {
  std::string commonName = "ztunnel intermediate CA";
  std::string organization;  // O=; empty: none
  std::chrono::seconds validity = std::chrono::hours(24 * 365);
  std::optional<int> pathLength;  // basicConstraints pathlen
};

// An intermediate CA signed by (caCertPem, caKeyPem).
Result<CertAndKeyPem> issueIntermediate(std::string_view caCertPem, std::string_view caKeyPem,
                                        const IntermediateOptions& options = {});

struct WorkloadCertOptions {
  using TimePoint = std::chrono::system_clock::time_point;

  // URI SANs in order. workloadCertOptions(id) fills exactly one: id.toUri().
  std::vector<std::string> uriSans;
  std::vector<std::string> dnsSans;
  // Defaults: notBefore = now - 1 minute (clock skew), notAfter = notBefore + 24 hours.
  std::optional<TimePoint> notBefore;
  std::optional<TimePoint> notAfter;
  bool isCa = false;  // basicConstraints CA:TRUE (a negative-test certificate)
  bool serverAuth = true;
  bool clientAuth = true;
  std::string commonName;  // empty (the default): empty subject, critical SAN
};

WorkloadCertOptions workloadCertOptions(const Identity& id);

struct IssuedCertificate {
  std::string certPem;   // the leaf
  std::string keyPem;    // PKCS#8; empty when signing a CSR (the requester holds the key)
  std::string chainPem;  // leaf + intermediates up to (excluding) the self-signed root
};

// Generates a fresh P-256 key and a leaf signed by (caCertPem, caKeyPem). If the CA is not
// self-signed, chainPem is leaf + CA cert + `caChainPem` (the CA's own intermediates, if any).
Result<IssuedCertificate> issueWorkload(std::string_view caCertPem, std::string_view caKeyPem,
                                        const WorkloadCertOptions& options,
                                        std::string_view caChainPem = {});

// Istio's CSR (§3.6): a fresh P-256 key, empty subject, an extensionRequest with one critical URI
// SAN = id, SHA-256 signature. Returns the CSR PEM and the key PEM.
struct CsrAndKeyPem {
  std::string csrPem;
  std::string keyPem;
};
Result<CsrAndKeyPem> generateCsr(const Identity& id);

// What a CA does with such a CSR: checks its signature, then issues a workload certificate for the
// CSR's public key. SANs: `options` URI/DNS SANs if any are given, else the CSR's requested SANs.
Result<IssuedCertificate> signCsr(std::string_view caCertPem, std::string_view caKeyPem,
                                  std::string_view csrPem, const WorkloadCertOptions& options = {},
                                  std::string_view caChainPem = {});

// The SANs a CSR requests (URIs), for CA-side checks such as Istio's impersonation rule.
Result<std::vector<std::string>> csrUriSans(std::string_view csrPem);

}  // namespace zt::tls
