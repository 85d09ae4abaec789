#include "ztunnel/io/timer_wheel.h"

#include <algorithm>
#include <bit>

namespace zt::io {

TimerWheel::TimerWheel(MonotonicTime origin, Duration resolution)
    : origin_(origin),
      resolution_(resolution > Duration::zero() ? resolution : kDefaultResolution) {
  heads_.fill(kNil);
}

TimerId TimerWheel::schedule(MonotonicTime deadline, uint64_t cookie) {
  uint64_t tick = 0;
  if (deadline > origin_) {
    // Round up: a timer never fires before its deadline.
    tick = static_cast<uint64_t>((deadline - origin_ + resolution_ - Duration(1)) / resolution_);
  }
  uint32_t n;
  if (freeHead_ != kNil) {
    n = freeHead_;
    freeHead_ = nodes_[n].next;
  } else {
    ZT_RELEASE_ASSERT(nodes_.size() < kNil - 1, "too many timers");
    n = static_cast<uint32_t>(nodes_.size());
    nodes_.emplace_back();
  }
  Node& node = nodes_[n];
  node.expires = tick;
  node.cookie = cookie;
  node.prev = node.next = kNil;
  place(n);
  ++count_;
  return TimerId{(static_cast<uint64_t>(node.gen) << 32) | n};
}

bool TimerWheel::pending(TimerId id) const {
  const uint32_t n = static_cast<uint32_t>(id.value);
  const uint32_t gen = static_cast<uint32_t>(id.value >> 32);
  return id && n < nodes_.size() && nodes_[n].gen == gen && nodes_[n].list != kFree;
}

bool TimerWheel::cancel(TimerId id) {
  if (!pending(id)) {
    return false;
  }
  release(static_cast<uint32_t>(id.value));
  return true;
}

void TimerWheel::place(uint32_t n) {
  Node& node = nodes_[n];
  // Past deadlines go to the tick being processed next; from inside expire() that is the one after
  // the current tick, so a callback re-arming "now" runs again next tick, not in a loop.
  const uint64_t earliest = firing_ ? current_ + 1 : current_;
  uint64_t e = std::max(node.expires, earliest);
  const uint64_t delta = e - current_;
  unsigned level;
  if (delta < (1ull << kBits)) {
    level = 0;
  } else if (delta < (1ull << (2 * kBits))) {
    level = 1;
  } else if (delta < (1ull << (3 * kBits))) {
    level = 2;
  } else {
    level = 3;
    const uint64_t maxDelta = (1ull << (4 * kBits)) - 1;
    if (delta > maxDelta) {
      // Out of range: park it in the farthest bucket; each cascade re-places it by its real tick.
      e = current_ + maxDelta;
    }
  }
  const uint32_t bucket = level * kSlots + static_cast<uint32_t>((e >> (level * kBits)) & kMask);
  link(bucket, n);
}

void TimerWheel::link(uint32_t list, uint32_t n) {
  Node& node = nodes_[n];
  node.list = list;
  node.prev = kNil;
  node.next = heads_[list];
  if (node.next != kNil) {
    nodes_[node.next].prev = n;
  }
  heads_[list] = n;
  if (list < kProcessing) {
    occupied_[list / 64] |= 1ull << (list % 64);
  }
}

void TimerWheel::unlink(uint32_t n) {
  Node& node = nodes_[n];
  if (node.prev != kNil) {
    nodes_[node.prev].next = node.next;
  } else {
    heads_[node.list] = node.next;
    if (node.next == kNil && node.list < kProcessing) {
      occupied_[node.list / 64] &= ~(1ull << (node.list % 64));
    }
  }
  if (node.next != kNil) {
    nodes_[node.next].prev = node.prev;
  }
  node.prev = node.next = kNil;
}

void TimerWheel::release(uint32_t n) {
  unlink(n);
  Node& node = nodes_[n];
  node.list = kFree;
  if (++node.gen == 0) {
    node.gen = 1;  // TimerId 0 means "none"
  }
  node.next = freeHead_;
  freeHead_ = n;
  --count_;
}

void TimerWheel::spliceToProcessing(uint32_t bucket) {
  ZT_ASSERT(heads_[kProcessing] == kNil);
  uint32_t first = heads_[bucket];
  heads_[bucket] = kNil;
  occupied_[bucket / 64] &= ~(1ull << (bucket % 64));
  heads_[kProcessing] = first;
  for (uint32_t n = first; n != kNil; n = nodes_[n].next) {
    nodes_[n].list = kProcessing;
  }
}

int TimerWheel::findSet(unsigned level, unsigned from) const {
  // First occupied bucket index >= from within `level`, or -1.
  for (unsigned i = from; i < kSlots;) {
    const unsigned bit = level * kSlots + i;
    uint64_t word = occupied_[bit / 64] >> (bit % 64);
    if (word != 0) {
      return static_cast<int>(i + static_cast<unsigned>(std::countr_zero(word)));
    }
    i = (i | 63u) + 1;
  }
  return -1;
}

void TimerWheel::advance(uint64_t target) {
  // Jump straight to the next tick where something happens (a level-0 bucket to fire or a
  // non-empty bucket to cascade), or past the target. Boundaries skipped on the way would only
  // have cascaded empty buckets.
  uint64_t next = target + 1;
  if (count_ != 0) {
    next = std::min(next, std::max(current_ + 1, nextEventTick()));
  }
  current_ = next;
  if ((current_ & kMask) == 0) {
    cascade();
  }
}

void TimerWheel::cascade() {
  // Entering a new 256-tick block: the level-1 bucket for it moves down; on a 65536-tick boundary
  // the level-2 bucket does too, and so on.
  for (unsigned level = 1; level < kLevels; ++level) {
    const uint32_t index = static_cast<uint32_t>((current_ >> (level * kBits)) & kMask);
    const uint32_t bucket = level * kSlots + index;
    uint32_t n = heads_[bucket];
    heads_[bucket] = kNil;
    occupied_[bucket / 64] &= ~(1ull << (bucket % 64));
    while (n != kNil) {
      const uint32_t next = nodes_[n].next;
      nodes_[n].prev = nodes_[n].next = kNil;
      place(n);
      n = next;
    }
    if (index != 0) {
      break;
    }
  }
}

uint64_t TimerWheel::nextEventTick() const {
  uint64_t best = UINT64_MAX;
  {
    // Level 0 holds ticks [current_, current_ + 255], one per bucket: exact.
    const unsigned cur = static_cast<unsigned>(current_ & kMask);
    int k = findSet(0, cur);
    if (k < 0) {
      k = findSet(0, 0);
    }
    if (k >= 0) {
      best = current_ + ((static_cast<unsigned>(k) - cur) & kMask);
    }
  }
  for (unsigned level = 1; level < kLevels; ++level) {
    const unsigned shift = level * kBits;
    const unsigned cur = static_cast<unsigned>((current_ >> shift) & kMask);
    // The bucket at `cur` was cascaded when this block began; its next turn is a full lap away.
    int k = findSet(level, (cur + 1) & kMask);
    if (k < 0) {
      k = findSet(level, 0);
    }
    if (k < 0) {
      continue;
    }
    const uint64_t steps = ((static_cast<unsigned>(k) - cur - 1) & kMask) + 1;
    best = std::min(best, ((current_ >> shift) + steps) << shift);
  }
  return best;
}

std::optional<MonotonicTime> TimerWheel::nextDeadline() const {
  if (count_ == 0) {
    return std::nullopt;
  }
  const uint64_t tick = nextEventTick();
  ZT_ASSERT(tick != UINT64_MAX);
  return origin_ + resolution_ * static_cast<int64_t>(tick);
}

}  // namespace zt::io
