#pragma once

// Result<T>: a value or a zt::Error (tl::expected from Debian's libexpected-dev). Call sites use
// only has_value()/value()/error()/and_then/map_error so a move to std::expected is an alias change.

#include <tl/expected.hpp>

#include "ztunnel/core/error.h"

namespace zt {

template <class T>
using Result = tl::expected<T, Error>;

// A Result with no value: success or an Error.
using Status = Result<void>;

inline tl::unexpected<Error> fail(Error error) { return tl::unexpected<Error>(std::move(error)); }

template <ErrorCode E>
tl::unexpected<Error> fail(E code, std::string detail = {}, int sysErrno = 0) {
  return tl::unexpected<Error>(Error(code, std::move(detail), sysErrno));
}

inline Status ok() { return {}; }

}  // namespace zt

// Propagates an error from an expression returning Result<...>; evaluates to nothing.
#define ZT_TRY_STATUS(expr)                                  \
  do {                                                       \
    if (auto zt_try_result_ = (expr); !zt_try_result_) {    \
      return ::zt::fail(std::move(zt_try_result_).error()); \
    }                                                        \
  } while (0)
