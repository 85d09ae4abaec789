#pragma once

// Time sources. Data-path code uses MonotonicTime (steady clock, nanoseconds); tests that need to
// control time inject a Clock.

#include <chrono>
#include <cstdint>

namespace zt {

using Duration = std::chrono::nanoseconds;
using MonotonicTime = std::chrono::steady_clock::time_point;

inline MonotonicTime monotonicNow() { return std::chrono::steady_clock::now(); }

// Seam for code whose behaviour depends on the passage of time (timeouts, refresh schedules).
class Clock {
 public:
  virtual ~Clock() = default;
  virtual MonotonicTime now() const = 0;
};

class SteadyClock final : public Clock {
 public:
  MonotonicTime now() const override { return monotonicNow(); }
};

// A clock that only moves when told to; for tests.
class ManualClock final : public Clock {
 public:
  MonotonicTime now() const override { return now_; }
  void advance(Duration d) { now_ += d; }

 private:
  MonotonicTime now_{};
};

}  // namespace zt
