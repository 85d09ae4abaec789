#pragma once

// TimerWheel: many coarse timers per worker (connect timeouts 10 s, HTTP/2 PING 10 s / 20 s,
// idle 5 min, drain deadlines) with O(1) schedule and cancel.
//
// A hierarchical hashed wheel (Linux's classic timer wheel layout): 4 levels of 256 buckets over
// ticks of `resolution` (default 1 ms). Level 0 holds timers due in the next 256 ticks, one tick
// per bucket; level L holds later timers in buckets 256^L ticks wide, which are re-distributed
// ("cascaded") to lower levels as time reaches them, so every timer fires at its own tick and no
// list is scanned to decide anything. With 1 ms ticks the range is 2^32 ms (49 days); later
// deadlines are re-placed at every cascade until they come into range.
//
// Precision: a deadline is rounded UP to the next tick, and expire(now) fires the timers whose tick
// is <= now; so a timer never fires early, and fires at most one tick (plus however late the loop
// calls expire) after its deadline. nextDeadline() is a lower bound used as the loop's wait
// timeout: it is exact when a timer is due within 256 ticks; further out it may be a cascade point
// (at most one early wake-up per non-empty higher-level bucket, i.e. <= 4/s with 1 ms ticks).
//
// TimerId carries a 32-bit generation: cancel() of a fired, cancelled or recycled id returns false
// and touches nothing, so holding a stale id is always safe.
//
// Re-entrancy: onExpire may schedule and cancel timers (including ones due in the same expire()
// call, which then do not fire). A timer scheduled from onExpire with a deadline <= now fires at
// the next tick at the earliest, never in the same tick, so a callback that re-arms "now" cannot
// loop forever. expire() must not be called from onExpire.
//
// Thread: single-threaded (one per worker).

#include <array>
#include <cstdint>
#include <optional>
#include <vector>

#include "ztunnel/core/assert.h"
#include "ztunnel/core/clock.h"

namespace zt::io {

struct TimerId {
  uint64_t value = 0;  // 0: no timer
  explicit operator bool() const { return value != 0; }
  friend bool operator==(const TimerId&, const TimerId&) = default;
};

class TimerWheel {
 public:
  static constexpr Duration kDefaultResolution = std::chrono::milliseconds(1);

  // Ticks count from `origin` (e.g. the loop's start time).
  explicit TimerWheel(MonotonicTime origin, Duration resolution = kDefaultResolution);

  TimerWheel(const TimerWheel&) = delete;
  TimerWheel& operator=(const TimerWheel&) = delete;
  TimerWheel(TimerWheel&&) noexcept = default;
  TimerWheel& operator=(TimerWheel&&) noexcept = default;

  // Arms a timer that passes `cookie` to onExpire at `deadline` (rounded up to a tick).
  TimerId schedule(MonotonicTime deadline, uint64_t cookie);
  // Disarms `id`. False if it already fired, was cancelled, or is not from this wheel.
  bool cancel(TimerId id);
  bool pending(TimerId id) const;

  // Fires every timer due at `now`, in deadline-tick order, calling onExpire(uint64_t cookie).
  // The timer is already disarmed when its callback runs. Returns the number fired.
  template <class F>
  size_t expire(MonotonicTime now, F&& onExpire) {
    ZT_ASSERT(!expiring_);
    if (now < origin_) {
      return 0;
    }
    const uint64_t target = static_cast<uint64_t>((now - origin_) / resolution_);
    size_t fired = 0;
    expiring_ = true;
    while (current_ <= target) {
      const uint32_t bucket = static_cast<uint32_t>(current_ & kMask);
      if (heads_[bucket] != kNil) {
        spliceToProcessing(bucket);
        uint32_t n;
        while ((n = heads_[kProcessing]) != kNil) {
          const uint64_t cookie = nodes_[n].cookie;
          release(n);
          ++fired;
          firing_ = true;
          onExpire(cookie);
          firing_ = false;
        }
      }
      advance(target);
    }
    expiring_ = false;
    return fired;
  }

  // When the earliest timer may be due (see Precision above); nullopt if none is armed.
  std::optional<MonotonicTime> nextDeadline() const;

  size_t size() const { return count_; }
  bool empty() const { return count_ == 0; }
  Duration resolution() const { return resolution_; }

 private:
  static constexpr unsigned kLevels = 4;
  static constexpr unsigned kBits = 8;
  static constexpr unsigned kSlots = 1u << kBits;
  static constexpr uint64_t kMask = kSlots - 1;
  static constexpr uint32_t kNil = UINT32_MAX;
  static constexpr uint32_t kProcessing = kLevels * kSlots;  // list id of the firing batch
  static constexpr uint32_t kFree = kProcessing + 1;         // list id of free nodes

  struct Node {
    uint64_t expires = 0;  // tick
    uint64_t cookie = 0;
    uint32_t prev = kNil;
    uint32_t next = kNil;
    uint32_t list = kFree;
    uint32_t gen = 1;
  };

  void place(uint32_t n);
  void link(uint32_t list, uint32_t n);
  void unlink(uint32_t n);
  void release(uint32_t n);
  void spliceToProcessing(uint32_t bucket);
  void advance(uint64_t target);
  void cascade();
  int findSet(unsigned level, unsigned from) const;
  uint64_t nextEventTick() const;

  MonotonicTime origin_;
  Duration resolution_;
  uint64_t current_ = 0;  // the next tick to process
  size_t count_ = 0;
  bool expiring_ = false;  // inside expire()
  bool firing_ = false;    // inside an onExpire callback
  std::vector<Node> nodes_;
  uint32_t freeHead_ = kNil;
  std::array<uint32_t, kLevels * kSlots + 1> heads_;  // + the processing list
  std::array<uint64_t, kLevels * kSlots / 64> occupied_{};
};

}  // namespace zt::io
