#include "hbone/error.h"

namespace hbone {
namespace {
std::string_view describe(int code) noexcept {
  switch (static_cast<HboneErrc>(code)) {
    case HboneErrc::kInvalidAuthority:
      return "invalid CONNECT authority";
    case HboneErrc::kInvalidHeader:
      return "invalid header value";
    case HboneErrc::kBadRequest:
      return "malformed CONNECT request";
    case HboneErrc::kInvalidConfig:
      return "invalid session configuration";
    case HboneErrc::kProtocol:
      return "HTTP/2 protocol error";
    case HboneErrc::kFlood:
      return "peer exceeded a flood limit";
    case HboneErrc::kPingTimeout:
      return "no PING acknowledgement within the timeout";
    case HboneErrc::kStreamNotFound:
      return "no such stream";
    case HboneErrc::kStreamLimit:
      return "stream limit reached on this connection";
    case HboneErrc::kGoaway:
      return "connection is going away";
    case HboneErrc::kInvalidState:
      return "invalid in the stream's state";
    case HboneErrc::kSessionDead:
      return "session is closed";
    case HboneErrc::kAborted:
      return "session aborted";
    case HboneErrc::kInternal:
      return "internal HTTP/2 library failure";
  }
  return "unknown hbone error";
}
}  // namespace

const zt::ErrorCategory& errorCategory(HboneErrc) noexcept {
  static constexpr zt::ErrorCategory kCategory{"hbone", &describe};
  return kCategory;
}

}  // namespace hbone
