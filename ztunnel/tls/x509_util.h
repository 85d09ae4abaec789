#pragma once

// Module-internal X.509 helpers shared by certificate.cc, cert_builder.cc and tls_session.cc.

#include <chrono>
#include <string>
#include <string_view>
#include <vector>

#include "ztunnel/core/result.h"
#include "ztunnel/tls/openssl_util.h"

namespace zt::tls {

// Every certificate in a PEM document, in order; at least one. Text outside PEM blocks is ignored
// (as OpenSSL does); a damaged block is an error. Errors: `code` with `what` and OpenSSL's reason.
Result<std::vector<X509Ptr>> parseCertificatesPem(std::string_view pem, std::string_view what,
                                                  TlsErrc code);

// The first private key in a PEM document (PKCS#8 or traditional; encrypted keys are rejected,
// never prompted for).
Result<EvpPkeyPtr> parsePrivateKeyPem(std::string_view pem, TlsErrc code);

std::string certificateToPem(X509* cert);
std::string privateKeyToPem(EVP_PKEY* key);  // PKCS#8, unencrypted

// ASN1_TIME -> system_clock; false if the time cannot be represented.
bool asn1TimeToTimePoint(const ASN1_TIME* t, std::chrono::system_clock::time_point* out);

// Subject as a one-line string for diagnostics ("" for an empty subject).
std::string subjectOneLine(X509* cert);

}  // namespace zt::tls
