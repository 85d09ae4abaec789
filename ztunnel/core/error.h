#pragma once

// Errors as values. Every module declares its own `enum class <Module>Errc` plus an
// `errorCategory(<Module>Errc)` function found by argument-dependent lookup; `zt::Error` carries
// one of those codes, an optional errno captured where the failure happened and an optional
// human-readable detail. Cheap to move; no virtual calls.
//
// Data-path code should pass a short static detail (or none) so that failures do not allocate
// beyond small-string storage; control-plane code may attach longer context.

#include <concepts>
#include <cstdint>
#include <string>
#include <string_view>
#include <utility>

namespace zt {

// Describes one module's error codes: its name and a function naming each code.
struct ErrorCategory {
  std::string_view name;
  std::string_view (*describe)(int code) noexcept;
};

template <class E>
concept ErrorCode = std::is_enum_v<E> && requires(E e) {
  { errorCategory(e) } -> std::same_as<const ErrorCategory&>;
};

class Error {
 public:
  template <ErrorCode E>
  Error(E code, std::string detail = {}, int sysErrno = 0)  // NOLINT(google-explicit-constructor)
      : category_(&errorCategory(code)),
        code_(static_cast<int>(code)),
        sysErrno_(sysErrno),
        detail_(std::move(detail)) {}

  const ErrorCategory& category() const { return *category_; }
  int code() const { return code_; }
  // errno (positive) captured at the failing call, or 0.
  int sysErrno() const { return sysErrno_; }
  const std::string& detail() const { return detail_; }

  template <ErrorCode E>
  bool is(E code) const {
    return category_ == &errorCategory(code) && code_ == static_cast<int>(code);
  }

  // Returns a copy with more context in front of the detail ("context: detail").
  Error withContext(std::string_view context) const&;
  Error withContext(std::string_view context) &&;

  // "<category>: <code description>[: <detail>][: <strerror(errno)>]"
  std::string message() const;

 private:
  const ErrorCategory* category_;
  int code_;
  int sysErrno_;
  std::string detail_;
};

// Errors of core itself (system calls wrapped in core helpers, parsing of core value types).
enum class CoreErrc {
  kSystem = 1,      // a system call failed; see sysErrno()
  kInvalidArgument,  // malformed input to a parser
  kNotFound,
  kTimedOut,
  kCancelled,
};
const ErrorCategory& errorCategory(CoreErrc) noexcept;

// Convenience for a failed system call: captures errno now.
Error systemError(std::string detail);
Error systemError(std::string detail, int err);

}  // namespace zt
