#pragma once

// Error codes of the hbone library (HTTP/2 CONNECT tunnels). See ztunnel/core/error.h for the
// pattern: `zt::Error(hbone::HboneErrc::kX, "detail")`, `error.is(HboneErrc::kX)`.

#include <cstdint>

#include "ztunnel/core/error.h"

namespace hbone {

enum class HboneErrc {
  kInvalidAuthority = 1,  // CONNECT :authority is not ip:port, [v6]:port or host:port
  kInvalidHeader,         // a header value (baggage, forwarded, traceparent) is malformed
  kBadRequest,            // the CONNECT request is malformed (the server answers 400)
  kInvalidConfig,         // SessionConfig values out of range
  kProtocol,              // the peer violated HTTP/2 (or the session gave up on the connection)
  kFlood,                 // the peer exceeded a flood limit (reliability.md §2.1-§2.3)
  kPingTimeout,           // no PING ACK within pingTimeout
  kStreamNotFound,        // no such open stream
  kStreamLimit,           // no stream capacity left on this connection
  kGoaway,                // GOAWAY sent or received: no new streams on this connection
  kInvalidState,          // the call is not valid in the stream's current state
  kSessionDead,           // the session failed or finished; nothing more can be done on it
  kAborted,               // the owner aborted the session (transport lost)
  kInternal,              // nghttp2 reported an internal failure (e.g. out of memory)
};
const zt::ErrorCategory& errorCategory(HboneErrc) noexcept;

// HTTP/2 error codes (RFC 9113 §7) so callers need not include nghttp2.h.
namespace h2 {
inline constexpr uint32_t kNoError = 0x0;
inline constexpr uint32_t kProtocolError = 0x1;
inline constexpr uint32_t kInternalError = 0x2;
inline constexpr uint32_t kFlowControlError = 0x3;
inline constexpr uint32_t kSettingsTimeout = 0x4;
inline constexpr uint32_t kStreamClosed = 0x5;
inline constexpr uint32_t kFrameSizeError = 0x6;
inline constexpr uint32_t kRefusedStream = 0x7;
inline constexpr uint32_t kCancel = 0x8;
inline constexpr uint32_t kCompressionError = 0x9;
inline constexpr uint32_t kConnectError = 0xa;
inline constexpr uint32_t kEnhanceYourCalm = 0xb;
inline constexpr uint32_t kInadequateSecurity = 0xc;
inline constexpr uint32_t kHttp11Required = 0xd;
}  // namespace h2

}  // namespace hbone
