#include "ztunnel/io/timer_wheel.h"

#include <gtest/gtest.h>

#include <map>
#include <random>
#include <vector>

namespace zt::io {
namespace {

using std::chrono::hours;
using std::chrono::microseconds;
using std::chrono::milliseconds;
using std::chrono::minutes;
using std::chrono::seconds;

// A driven clock: time only moves when the test says so.
class TimerWheelTest : public ::testing::Test {
 protected:
  ManualClock clock_;
  MonotonicTime t0_ = clock_.now();
  TimerWheel wheel_{t0_};
  std::vector<uint64_t> fired_;

  size_t expireAt(Duration sinceStart) {
    return wheel_.expire(t0_ + sinceStart, [&](uint64_t c) { fired_.push_back(c); });
  }
};

TEST_F(TimerWheelTest, FiresAtDeadlineNotBefore) {
  wheel_.schedule(t0_ + milliseconds(10), 1);
  EXPECT_EQ(wheel_.nextDeadline(), t0_ + milliseconds(10));
  EXPECT_EQ(expireAt(milliseconds(9)), 0u);
  EXPECT_EQ(expireAt(microseconds(9999)), 0u);
  EXPECT_EQ(expireAt(milliseconds(10)), 1u);
  EXPECT_EQ(fired_, std::vector<uint64_t>{1});
  EXPECT_TRUE(wheel_.empty());
  EXPECT_EQ(wheel_.nextDeadline(), std::nullopt);
}

TEST_F(TimerWheelTest, DeadlinesRoundUpToTheNextTick) {
  wheel_.schedule(t0_ + microseconds(10500), 1);
  EXPECT_EQ(expireAt(milliseconds(10)), 0u);
  EXPECT_EQ(expireAt(microseconds(10999)), 0u);
  EXPECT_EQ(expireAt(milliseconds(11)), 1u);
}

TEST_F(TimerWheelTest, PastDeadlinesFireOnNextExpire) {
  expireAt(seconds(1));
  wheel_.schedule(t0_, 7);
  EXPECT_LE(*wheel_.nextDeadline(), t0_ + seconds(1) + milliseconds(1));
  EXPECT_EQ(expireAt(seconds(1) + milliseconds(1)), 1u);
}

TEST_F(TimerWheelTest, FiresInDeadlineOrderAcrossLevels) {
  // 1 ms (level 0) ... 5 min (idle) ... 3 h (level 2/3).
  wheel_.schedule(t0_ + hours(3), 5);
  wheel_.schedule(t0_ + minutes(5), 4);
  wheel_.schedule(t0_ + seconds(10), 3);
  wheel_.schedule(t0_ + milliseconds(300), 2);
  wheel_.schedule(t0_ + milliseconds(1), 1);
  EXPECT_EQ(expireAt(hours(4)), 5u);
  EXPECT_EQ(fired_, (std::vector<uint64_t>{1, 2, 3, 4, 5}));
}

TEST_F(TimerWheelTest, FollowingNextDeadlineFiresExactlyOnTimeWithFewWakeups) {
  const MonotonicTime deadline = t0_ + minutes(5);
  wheel_.schedule(deadline, 42);
  int wakeups = 0;
  MonotonicTime now = t0_;
  while (fired_.empty()) {
    auto next = wheel_.nextDeadline();
    ASSERT_TRUE(next.has_value());
    ASSERT_LE(*next, deadline);  // a lower bound, never past the real deadline
    ASSERT_GT(*next, now - milliseconds(1));
    now = *next;
    wheel_.expire(now, [&](uint64_t c) { fired_.push_back(c); });
    ASSERT_LT(++wakeups, 10) << "too many early wake-ups for one far timer";
  }
  EXPECT_EQ(now, deadline);
  EXPECT_EQ(fired_, std::vector<uint64_t>{42});
}

TEST_F(TimerWheelTest, CancelIsSafeForPendingFiredAndStaleIds) {
  TimerId a = wheel_.schedule(t0_ + milliseconds(5), 1);
  TimerId b = wheel_.schedule(t0_ + milliseconds(5), 2);
  EXPECT_TRUE(wheel_.pending(a));
  EXPECT_TRUE(wheel_.cancel(a));
  EXPECT_FALSE(wheel_.cancel(a));  // twice
  EXPECT_FALSE(wheel_.pending(a));
  EXPECT_EQ(expireAt(milliseconds(5)), 1u);
  EXPECT_EQ(fired_, std::vector<uint64_t>{2});
  EXPECT_FALSE(wheel_.cancel(b));  // after it fired

  // Node reuse: a stale id must not cancel the timer now occupying its node.
  TimerId c = wheel_.schedule(t0_ + milliseconds(50), 3);
  EXPECT_FALSE(wheel_.cancel(a));
  EXPECT_FALSE(wheel_.cancel(b));
  EXPECT_TRUE(wheel_.pending(c));
  EXPECT_FALSE(wheel_.cancel(TimerId{}));
  EXPECT_FALSE(wheel_.cancel(TimerId{0xdeadbeef00000005ull}));
  EXPECT_EQ(expireAt(milliseconds(50)), 1u);
  EXPECT_EQ(fired_.back(), 3u);
}

TEST_F(TimerWheelTest, CallbacksMayCancelAndSchedule) {
  TimerId victim = wheel_.schedule(t0_ + milliseconds(10), 2);
  wheel_.schedule(t0_ + milliseconds(10), 1);
  std::vector<uint64_t> order;
  int rearms = 0;
  auto onExpire = [&](uint64_t c) {
    order.push_back(c);
    if (c == 1) {
      wheel_.cancel(victim);  // due in the same tick: must not fire
      // Re-arm "now": must not fire again within this tick.
      wheel_.schedule(t0_ + milliseconds(10), 3);
    }
    if (c == 3 && ++rearms < 3) {
      wheel_.schedule(t0_, 3);  // in the past
    }
  };
  // Whichever of 1/2 runs first: if 2 ran first it was not cancelled in time, which is fine; the
  // wheel fires the same-tick list in LIFO schedule order, so 1 runs first here.
  wheel_.expire(t0_ + milliseconds(10), onExpire);
  EXPECT_EQ(order, std::vector<uint64_t>{1});
  wheel_.expire(t0_ + milliseconds(11), onExpire);
  EXPECT_EQ(order, (std::vector<uint64_t>{1, 3}));
  // Each re-arm "in the past" fires one tick later, so a long expire() runs them all, bounded.
  wheel_.expire(t0_ + milliseconds(100), onExpire);
  EXPECT_EQ(order, (std::vector<uint64_t>{1, 3, 3, 3}));
  EXPECT_TRUE(wheel_.empty());
}

TEST_F(TimerWheelTest, BeyondTheWheelRange) {
  // 2^32 ms is ~49.7 days; these are re-placed at every cascade until in range.
  const auto far = hours(24 * 60);
  wheel_.schedule(t0_ + far, 9);
  wheel_.schedule(t0_ + far + milliseconds(1), 10);
  EXPECT_EQ(expireAt(far - milliseconds(1)), 0u);
  EXPECT_EQ(expireAt(far), 1u);
  EXPECT_EQ(expireAt(far + milliseconds(1)), 1u);
  EXPECT_EQ(fired_, (std::vector<uint64_t>{9, 10}));
}

TEST_F(TimerWheelTest, CoarserResolution) {
  TimerWheel w(t0_, milliseconds(10));
  std::vector<uint64_t> got;
  w.schedule(t0_ + milliseconds(11), 1);  // rounds up to 20 ms
  EXPECT_EQ(w.nextDeadline(), t0_ + milliseconds(20));
  EXPECT_EQ(w.expire(t0_ + milliseconds(19), [&](uint64_t c) { got.push_back(c); }), 0u);
  EXPECT_EQ(w.expire(t0_ + milliseconds(20), [&](uint64_t c) { got.push_back(c); }), 1u);
}

// Against a reference model: random schedules and cancels, clock driven in random steps. Every
// timer fires exactly once, never before its deadline, and in the first expire() whose time has
// reached its deadline rounded up to the tick.
TEST_F(TimerWheelTest, MatchesReferenceModel) {
  std::mt19937_64 rng(7);
  struct Expect {
    MonotonicTime deadline;
    MonotonicTime tickTime;
    TimerId id;
  };
  std::map<uint64_t, Expect> live;
  uint64_t nextCookie = 1;
  Duration now{0};
  const Duration ranges[] = {milliseconds(300), seconds(20), minutes(6), hours(5)};
  for (int step = 0; step < 4000; ++step) {
    int schedules = static_cast<int>(rng() % 4);
    for (int i = 0; i < schedules; ++i) {
      Duration range = ranges[rng() % 4];
      Duration d = Duration(static_cast<int64_t>(rng() % static_cast<uint64_t>(range.count())));
      MonotonicTime deadline = t0_ + now + d;
      auto ticks = (now + d + milliseconds(1) - Duration(1)) / milliseconds(1);
      TimerId id = wheel_.schedule(deadline, nextCookie);
      live[nextCookie++] = Expect{deadline, t0_ + milliseconds(1) * ticks, id};
    }
    if (!live.empty() && rng() % 3 == 0) {
      auto it = live.begin();
      std::advance(it, static_cast<long>(rng() % live.size()));
      ASSERT_TRUE(wheel_.cancel(it->second.id));
      live.erase(it);
    }
    ASSERT_EQ(wheel_.size(), live.size());
    if (auto next = wheel_.nextDeadline()) {
      MonotonicTime earliest = MonotonicTime::max();
      for (auto& [c, e] : live) {
        earliest = std::min(earliest, e.tickTime);
      }
      ASSERT_LE(*next, earliest);
    }
    // Steps from sub-tick to minutes.
    const Duration steps[] = {microseconds(300), milliseconds(7), milliseconds(900), seconds(40),
                              minutes(3)};
    now += steps[rng() % 5];
    MonotonicTime t = t0_ + now;
    std::vector<uint64_t> got;
    wheel_.expire(t, [&](uint64_t c) { got.push_back(c); });
    for (uint64_t c : got) {
      auto it = live.find(c);
      ASSERT_NE(it, live.end()) << "fired twice or after cancel: " << c;
      ASSERT_LE(it->second.deadline, t) << "fired early";
      live.erase(it);
    }
    for (auto& [c, e] : live) {
      ASSERT_GT(e.tickTime, t) << "due timer " << c << " did not fire";
    }
  }
}

}  // namespace
}  // namespace zt::io
