#pragma once

// Error codes of the tls module. The proxy maps them to response flags: kPeerIdentityRejected is an
// IDENTITY_ERROR, the other handshake/record codes are TLS_FAILURE.

#include "ztunnel/core/error.h"

namespace zt::tls {

enum class TlsErrc {
  kInvalidSpiffeId = 1,     // a string is not a strict spiffe://<td>/ns/<ns>/sa/<sa> URI
  kInvalidCredentials,      // our own certificate/key/roots are unusable (PEM, key mismatch, SAN)
  kCertificateIssuance,     // minting or signing a certificate or CSR failed
  kContextSetup,            // configuring an SSL_CTX failed
  kInvalidArgument,         // API misuse detected at creation (e.g. no expected identities)
  kHandshakeFailed,         // TLS handshake failed (protocol, version, cipher, peer alert)
  kPeerCertificateInvalid,  // the peer's chain did not verify (unknown CA, expired, wrong EKU)
  kPeerIdentityRejected,    // the peer's SPIFFE identity is not acceptable
  kAlpnMismatch,            // the peer did not negotiate "h2"
  kRecordError,             // a record-layer failure after the handshake (bad MAC, alert)
  kInvalidState,            // write before the handshake, after close or after a failure
  kFileIo,                  // reading or writing certificate files
  kKernelTls,               // kernel TLS unavailable or its set-up failed
  kInternal,                // an OpenSSL call failed for a reason of our own (allocation, ...)
};

const ErrorCategory& errorCategory(TlsErrc) noexcept;

}  // namespace zt::tls
