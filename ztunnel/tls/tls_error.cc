#include "ztunnel/tls/tls_error.h"

namespace zt::tls {

namespace {
std::string_view describeTls(int code) noexcept {
  switch (static_cast<TlsErrc>(code)) {
    case TlsErrc::kInvalidSpiffeId:
      return "invalid SPIFFE id";
    case TlsErrc::kInvalidCredentials:
      return "invalid credentials";
    case TlsErrc::kCertificateIssuance:
      return "certificate issuance failed";
    case TlsErrc::kContextSetup:
      return "TLS context set-up failed";
    case TlsErrc::kInvalidArgument:
      return "invalid argument";
    case TlsErrc::kHandshakeFailed:
      return "TLS handshake failed";
    case TlsErrc::kPeerCertificateInvalid:
      return "peer certificate invalid";
    case TlsErrc::kPeerIdentityRejected:
      return "peer identity rejected";
    case TlsErrc::kAlpnMismatch:
      return "ALPN h2 not negotiated";
    case TlsErrc::kRecordError:
      return "TLS record error";
    case TlsErrc::kInvalidState:
      return "invalid TLS session state";
    case TlsErrc::kFileIo:
      return "certificate file I/O failed";
    case TlsErrc::kKernelTls:
      return "kernel TLS failed";
    case TlsErrc::kInternal:
      return "internal TLS error";
  }
  return "unknown tls error";
}
}  // namespace

const ErrorCategory& errorCategory(TlsErrc) noexcept {
  static constexpr ErrorCategory kCategory{"tls", &describeTls};
  return kCategory;
}

}  // namespace zt::tls
