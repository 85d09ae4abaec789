#include "ztunnel/io/errors.h"

namespace zt::io {
namespace {

std::string_view describeIo(int code) noexcept {
  switch (static_cast<IoErrc>(code)) {
    case IoErrc::kUnavailable:
      return "io_uring unavailable";
    case IoErrc::kFeatureMissing:
      return "io_uring feature missing";
    case IoErrc::kRingSetup:
      return "io_uring setup failed";
    case IoErrc::kSubmit:
      return "io_uring submit failed";
    case IoErrc::kRegister:
      return "io_uring register failed";
    case IoErrc::kSocket:
      return "socket operation failed";
    case IoErrc::kPermissionDenied:
      return "permission denied";
    case IoErrc::kInvalidArgument:
      return "invalid argument";
    case IoErrc::kEventFd:
      return "eventfd failed";
  }
  return "unknown io error";
}

}  // namespace

const ErrorCategory& errorCategory(IoErrc) noexcept {
  static constexpr ErrorCategory kCategory{"io", &describeIo};
  return kCategory;
}

}  // namespace zt::io
