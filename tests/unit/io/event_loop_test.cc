#include "ztunnel/io/event_loop.h"

#include <gtest/gtest.h>

#include <atomic>
#include <future>
#include <string>
#include <thread>
#include <variant>

#include "tests/unit/io/io_test_util.h"

namespace zt::io {
namespace {

using namespace std::chrono_literals;

struct Ping {
  int n;
};
struct Quit {};
using Msg = std::variant<Ping, Quit, std::string>;

struct RecordingHandler {
  EventLoop<Msg>* loop = nullptr;
  std::vector<int> pings;
  std::vector<std::string> strings;
  std::vector<uint64_t> timers;
  std::vector<Token> completions;
  int afterDispatchCalls = 0;
  MonotonicTime firstMessageAt{};

  void onCompletion(Token t, int32_t, uint32_t) { completions.push_back(t); }
  void onTimer(uint64_t cookie) { timers.push_back(cookie); }
  void onMessage(Msg&& m) {
    if (firstMessageAt == MonotonicTime{}) {
      firstMessageAt = monotonicNow();
    }
    if (auto* p = std::get_if<Ping>(&m)) {
      pings.push_back(p->n);
    } else if (auto* s = std::get_if<std::string>(&m)) {
      strings.push_back(std::move(*s));
    } else {
      loop->stop();
    }
  }
  void afterDispatch() { ++afterDispatchCalls; }
};

static_assert(LoopHandler<RecordingHandler, Msg>);

TEST(EventLoop, CrossThreadMessageWakesASleepingLoop) {
  ZT_SKIP_WITHOUT_IO_URING();
  auto mailbox = Mailbox<Msg>::create();
  ASSERT_TRUE(mailbox);
  std::promise<void> sleeping;
  auto worker = std::async(std::launch::async, [&] {
    RecordingHandler h;
    auto loop = EventLoop<Msg>::create(**mailbox);
    EXPECT_TRUE(loop) << loop.error().message();
    if (!loop) {
      sleeping.set_value();
      return h;
    }
    h.loop = loop->get();
    sleeping.set_value();
    // No timers and nothing in flight but the mailbox read: the loop sleeps until woken.
    auto st = (*loop)->run(h);
    EXPECT_TRUE(st) << st.error().message();
    EXPECT_EQ((*loop)->stats().messages, 4u);
    EXPECT_GE((*loop)->stats().wakeups, 1u);
    return h;
  });
  sleeping.get_future().wait();
  std::this_thread::sleep_for(100ms);  // let it block in io_uring_enter
  const auto postedAt = monotonicNow();
  (*mailbox)->post(Ping{1});
  (*mailbox)->post(std::string("state v2"));
  (*mailbox)->post(Ping{2});
  (*mailbox)->post(Quit{});
  ASSERT_EQ(worker.wait_for(5s), std::future_status::ready) << "loop did not wake up";
  RecordingHandler h = worker.get();
  EXPECT_EQ(h.pings, (std::vector<int>{1, 2}));
  EXPECT_EQ(h.strings, std::vector<std::string>{"state v2"});
  EXPECT_GE(h.firstMessageAt, postedAt);
  EXPECT_GE(h.afterDispatchCalls, 1);
}

TEST(EventLoop, StopFromAnotherThread) {
  ZT_SKIP_WITHOUT_IO_URING();
  auto mailbox = Mailbox<Msg>::create();
  ASSERT_TRUE(mailbox);
  std::atomic<EventLoop<Msg>*> loopPtr{nullptr};
  auto worker = std::async(std::launch::async, [&] {
    RecordingHandler h;
    auto loop = EventLoop<Msg>::create(**mailbox);
    if (!loop) {
      return false;
    }
    loopPtr = loop->get();
    return (*loop)->run(h).has_value();
  });
  while (loopPtr.load() == nullptr && worker.wait_for(1ms) != std::future_status::ready) {
  }
  ASSERT_NE(loopPtr.load(), nullptr);
  std::this_thread::sleep_for(50ms);
  loopPtr.load()->stop();
  ASSERT_EQ(worker.wait_for(5s), std::future_status::ready);
  EXPECT_TRUE(worker.get());
}

TEST(EventLoop, MessagesPostedBeforeRunAreDelivered) {
  ZT_SKIP_WITHOUT_IO_URING();
  auto mailbox = Mailbox<Msg>::create();
  ASSERT_TRUE(mailbox);
  (*mailbox)->post(Ping{7});
  (*mailbox)->post(Quit{});
  auto loop = EventLoop<Msg>::create(**mailbox);
  ASSERT_TRUE(loop);
  RecordingHandler h;
  h.loop = loop->get();
  ASSERT_TRUE((*loop)->run(h));
  EXPECT_EQ(h.pings, std::vector<int>{7});
}

TEST(EventLoop, TimersDriveTheWaitTimeout) {
  ZT_SKIP_WITHOUT_IO_URING();
  auto mailbox = Mailbox<Msg>::create();
  ASSERT_TRUE(mailbox);
  auto loop = EventLoop<Msg>::create(**mailbox);
  ASSERT_TRUE(loop);
  RecordingHandler h;
  h.loop = loop->get();
  EventLoop<Msg>& l = **loop;
  const auto start = monotonicNow();
  l.scheduleAfter(30ms, 2);
  l.scheduleAfter(10ms, 1);
  TimerId cancelled = l.scheduleAfter(20ms, 99);
  EXPECT_TRUE(l.cancelTimer(cancelled));
  for (int i = 0; i < 100 && h.timers.size() < 2; ++i) {
    ASSERT_TRUE(l.runOnce(h));  // no maxWait: only the timer deadline can end the wait
  }
  EXPECT_EQ(h.timers, (std::vector<uint64_t>{1, 2}));
  EXPECT_GE(monotonicNow() - start, 30ms);
  EXPECT_LT(l.stats().iterations, 10u) << "the loop should sleep until each deadline";
  EXPECT_EQ(l.stats().timersFired, 2u);
}

TEST(EventLoop, CompletionsReachTheHandlerInOneBatch) {
  ZT_SKIP_WITHOUT_IO_URING();
  auto mailbox = Mailbox<Msg>::create();
  ASSERT_TRUE(mailbox);
  auto loop = EventLoop<Msg>::create(**mailbox);
  ASSERT_TRUE(loop);
  RecordingHandler h;
  EventLoop<Msg>& l = **loop;
  for (uint32_t i = 0; i < 20; ++i) {
    l.ring().prepNop(Token{userOp(1), 0, 0, i});
  }
  EXPECT_EQ(l.ring().pendingSqes(), 21u);  // + the mailbox read armed at create()
  for (int i = 0; i < 10 && h.completions.size() < 20; ++i) {
    ASSERT_TRUE(l.runOnce(h, 100ms));
  }
  ASSERT_EQ(h.completions.size(), 20u);
  EXPECT_EQ(h.completions[0].op, userOp(1));
  EXPECT_EQ(l.stats().completions, 20u);
  EXPECT_EQ(l.ring().pendingSqes(), 0u);
}

}  // namespace
}  // namespace zt::io
