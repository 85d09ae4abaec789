#pragma once

// The outcome class of a proxied connection, as ztunnel reports it in metrics and access logs
// (spec §6.1 `response_flags`). Every failure path maps to exactly one flag.

#include <cstdint>
#include <string_view>

namespace zt::proxy {

enum class ResponseFlag : uint8_t {
  kNone,                // "-"
  kDeny,                // authorization policy denied
  kConnect,             // upstream connect failed / non-200 CONNECT response
  kTlsFailure,          // TLS handshake or verification failed
  kH2HandshakeFailure,  // HTTP/2 session could not be set up
  kNetworkPolicy,       // connect timed out: "maybe a NetworkPolicy is blocking HBONE port 15008"
  kIdentityError,       // no certificate for the source identity
};

constexpr std::string_view toString(ResponseFlag f) {
  switch (f) {
    case ResponseFlag::kNone:
      return "-";
    case ResponseFlag::kDeny:
      return "DENY";
    case ResponseFlag::kConnect:
      return "CONNECT";
    case ResponseFlag::kTlsFailure:
      return "TLS_FAILURE";
    case ResponseFlag::kH2HandshakeFailure:
      return "H2_HANDSHAKE_FAILURE";
    case ResponseFlag::kNetworkPolicy:
      return "NETWORK_POLICY";
    case ResponseFlag::kIdentityError:
      return "IDENTITY_ERROR";
  }
  return "-";
}

}  // namespace zt::proxy
