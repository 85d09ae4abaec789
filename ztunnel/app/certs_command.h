#pragma once

// `ztunnel certs`: the certificate tooling a standalone user needs, so no other tool is required.
//
//   ztunnel certs create-root --trust-domain TD --out DIR [--validity DURATION]
//       A mesh root CA: DIR/root-cert.pem and DIR/root-key.pem (0600). Default validity 10 years.
//   ztunnel certs issue --ca DIR --namespace NS --service-account SA --out DIR
//                       [--trust-domain TD] [--validity DURATION]
//       A workload certificate (ECDSA P-256, URI SAN spiffe://TD/ns/NS/sa/SA) signed by the root
//       in --ca, written as Istio's file-mounted names: cert-chain.pem, key.pem (0600) and
//       root-cert.pem, ready for WORKLOAD_CERT_DIR. Default validity 24h; TD cluster.local.
//   ztunnel certs show --dir DIR
//       Prints the identity, serial and validity of DIR's certificate.
//
// Files are written atomically (temporary file + rename), so a running ztunnel watching the
// directory never reads a half-written file.

#include <string>
#include <vector>

namespace zt::app {

// Returns the exit code; prints results to stdout and errors to stderr.
int runCerts(const std::vector<std::string>& args);

std::string certsUsage();

}  // namespace zt::app
