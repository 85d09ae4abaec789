#pragma once

// Helpers shared by the io unit tests (header-only; tests/unit/io only).

#include <gtest/gtest.h>

#include <chrono>
#include <optional>
#include <string>
#include <vector>

#include "ztunnel/io/probe.h"
#include "ztunnel/io/ring.h"

namespace zt::io::iotest {

// Why io_uring cannot be used here (probe failure message), or nullopt. Probed once.
inline const std::optional<std::string>& ioUringUnavailable() {
  static const std::optional<std::string> why = []() -> std::optional<std::string> {
    auto r = probeIoUring();
    if (!r) {
      return r.error().message();
    }
    return std::nullopt;
  }();
  return why;
}

#define ZT_SKIP_WITHOUT_IO_URING()                                         \
  do {                                                                     \
    if (const auto& why_ = ::zt::io::iotest::ioUringUnavailable(); why_) { \
      GTEST_SKIP() << "io_uring unavailable: " << *why_;                   \
    }                                                                      \
  } while (0)

struct Completion {
  Token token;
  int32_t res;
  uint32_t flags;
};

// Submits and reaps until `n` completions arrived or `timeout` passed (bounded either way).
inline std::vector<Completion> collect(
    Ring& ring, size_t n, std::chrono::milliseconds timeout = std::chrono::seconds(5)) {
  std::vector<Completion> out;
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (out.size() < n && std::chrono::steady_clock::now() < deadline) {
    auto st = ring.submitAndWait(std::chrono::milliseconds(20));
    EXPECT_TRUE(st.has_value()) << (st ? "" : st.error().message());
    ring.reap([&](const io_uring_cqe& c) { out.push_back({unpack(c.user_data), c.res, c.flags}); });
  }
  return out;
}

}  // namespace zt::io::iotest
