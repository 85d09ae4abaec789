#include "ztunnel/core/error.h"

#include <cerrno>
#include <cstring>

namespace zt {

Error Error::withContext(std::string_view context) const& {
  Error copy = *this;
  return std::move(copy).withContext(context);
}

Error Error::withContext(std::string_view context) && {
  if (detail_.empty()) {
    detail_ = std::string(context);
  } else {
    detail_ = std::string(context) + ": " + detail_;
  }
  return std::move(*this);
}

std::string Error::message() const {
  std::string out(category_->name);
  out += ": ";
  out += category_->describe(code_);
  if (!detail_.empty()) {
    out += ": ";
    out += detail_;
  }
  if (sysErrno_ != 0) {
    out += ": ";
    out += std::strerror(sysErrno_);
  }
  return out;
}

namespace {
std::string_view describeCore(int code) noexcept {
  switch (static_cast<CoreErrc>(code)) {
    case CoreErrc::kSystem:
      return "system call failed";
    case CoreErrc::kInvalidArgument:
      return "invalid argument";
    case CoreErrc::kNotFound:
      return "not found";
    case CoreErrc::kTimedOut:
      return "timed out";
    case CoreErrc::kCancelled:
      return "cancelled";
  }
  return "unknown core error";
}
}  // namespace

const ErrorCategory& errorCategory(CoreErrc) noexcept {
  static constexpr ErrorCategory kCategory{"core", &describeCore};
  return kCategory;
}

Error systemError(std::string detail) { return systemError(std::move(detail), errno); }

Error systemError(std::string detail, int err) {
  return Error(CoreErrc::kSystem, std::move(detail), err);
}

}  // namespace zt
