#pragma once

// EventLoop<Msg>: the per-worker loop. Owns a Ring and a TimerWheel and serves one Mailbox<Msg>.
//
//   loop = EventLoop<Msg>::create(mailbox, options)   // on the worker thread (SINGLE_ISSUER)
//   ... create BufRings on loop->ring(), listeners, arm accepts ...
//   loop->run(handler);                                // until stop()
//
// One iteration (runOnce):
//   1. submit every SQE prepared since the last iteration and wait for a completion, the next
//      timer deadline (the wait timeout), or a mailbox wake-up — one io_uring_enter;
//   2. reap all ready CQEs, calling handler.onCompletion(token, res, flags) for each, then
//      advance the CQ once;
//   3. if the mailbox woke us: handler.onMessage(Msg&&) for each queued message;
//   4. handler.onTimer(cookie) for each expired timer;
//   5. handler.afterDispatch() if the handler has one: the place to flush BufRings, re-arm parked
//      recvs, and free connections whose last operation completed (deferred free).
// SQEs prepared in 2-5 go to the kernel in step 1 of the next iteration: one submit per batch.
//
// Handler (a concrete type; no virtual calls):
//   void onCompletion(Token token, int32_t res, uint32_t flags);
//   void onTimer(uint64_t cookie);
//   void onMessage(Msg&& msg);
//   void afterDispatch();   // optional
// Tokens with Op::kWake belong to the loop and never reach the handler.
//
// Stale-completion rule (architecture §4): an object that owns operations (a connection, a
// listener) lives in a SlotMap slot and counts its in-flight operations. It releases the slot
// (SlotMap::erase, which bumps the generation) only after every one of them completed — to tear
// down it cancels (prepCancelFd) and closes, then waits for the -ECANCELED and close CQEs. So a
// completion always finds its owner. Should one still arrive for a released slot (a bug, or an op
// deliberately left uncounted), SlotMap::resolve(token) sees the generation mismatch, returns
// nullptr and counts it in staleCompletions(); the handler drops the completion. A handler's
// dispatch is therefore: `auto* c = conns_.resolve(token); if (!c) return; switch (token.op) ...`.
//
// Threads: everything runs on the thread that created the loop, except stop() and
// Mailbox::post(), which any thread may call. Lifetime: the Mailbox outlives the loop; the owner
// should cancel and reap its operations before destroying the loop (destroying the ring cancels
// whatever is left).

#include <algorithm>
#include <cerrno>
#include <memory>
#include <optional>
#include <utility>

#include "ztunnel/core/clock.h"
#include "ztunnel/core/result.h"
#include "ztunnel/io/errors.h"
#include "ztunnel/io/mailbox.h"
#include "ztunnel/io/ring.h"
#include "ztunnel/io/timer_wheel.h"
#include "ztunnel/io/user_data.h"

namespace zt::io {

struct EventLoopOptions {
  RingOptions ring;
  Duration timerResolution = TimerWheel::kDefaultResolution;
};

struct LoopStats {
  uint64_t iterations = 0;
  uint64_t completions = 0;  // CQEs handed to the handler
  uint64_t wakeups = 0;      // mailbox wake-ups
  uint64_t messages = 0;
  uint64_t timersFired = 0;
};

template <class H, class Msg>
concept LoopHandler = requires(H& h, Token t, int32_t res, uint32_t flags, uint64_t cookie,
                               Msg&& msg) {
  h.onCompletion(t, res, flags);
  h.onTimer(cookie);
  h.onMessage(std::move(msg));
};

// The wake-read token (reserved slot; the loop intercepts every Op::kWake token).
inline constexpr Token kWakeToken{Op::kWake, 0, 0, UINT32_MAX};

template <class Msg>
class EventLoop {
 public:
  // Creates the ring (bound to the calling thread) and arms the mailbox read.
  static Result<std::unique_ptr<EventLoop>> create(Mailbox<Msg>& mailbox,
                                                   const EventLoopOptions& options = {}) {
    auto ring = Ring::create(options.ring);
    if (!ring) {
      return fail(std::move(ring).error());
    }
    std::unique_ptr<EventLoop> loop(new EventLoop(std::move(*ring), mailbox, options));
    loop->armWake();
    return loop;
  }

  EventLoop(const EventLoop&) = delete;
  EventLoop& operator=(const EventLoop&) = delete;

  Ring& ring() { return ring_; }
  TimerWheel& timers() { return timers_; }
  Mailbox<Msg>& mailbox() { return mailbox_; }
  const LoopStats& stats() const { return stats_; }

  // The time at the start of the current iteration's dispatch (one clock read per iteration).
  MonotonicTime now() const { return now_; }
  TimerId scheduleAt(MonotonicTime deadline, uint64_t cookie) {
    return timers_.schedule(deadline, cookie);
  }
  TimerId scheduleAfter(Duration delay, uint64_t cookie) {
    return timers_.schedule(now_ + delay, cookie);
  }
  bool cancelTimer(TimerId id) { return timers_.cancel(id); }

  // Any thread: run() returns after the current iteration.
  void stop() { mailbox_.core().requestStop(); }
  bool stopRequested() const { return mailbox_.stopRequested(); }

  // Runs iterations until stop(). Returns an error only if io_uring itself fails.
  template <class Handler>
  requires LoopHandler<Handler, Msg> Status run(Handler& handler) {
    while (!mailbox_.stopRequested()) {
      ZT_TRY_STATUS(runOnce(handler));
    }
    return ok();
  }

  // One iteration; waits at most `maxWait` (nullopt: until the next timer or event).
  template <class Handler>
  requires LoopHandler<Handler, Msg> Status
  runOnce(Handler& handler, std::optional<Duration> maxWait = std::nullopt) {
    std::optional<Duration> wait = maxWait;
    if (auto deadline = timers_.nextDeadline()) {
      Duration untilTimer = *deadline - monotonicNow();
      wait = wait ? std::min(*wait, untilTimer) : untilTimer;
    }
    if (mailbox_.stopRequested()) {
      wait = Duration::zero();
    }
    ZT_TRY_STATUS(ring_.submitAndWait(wait));
    now_ = monotonicNow();

    bool woke = false;
    int wakeError = 0;
    stats_.completions += ring_.reap([&](const io_uring_cqe& cqe) {
      const Token token = unpack(cqe.user_data);
      if (token.op == Op::kWake) [[unlikely]] {
        woke = true;
        if (cqe.res < 0 && cqe.res != -EINTR && cqe.res != -EAGAIN && cqe.res != -ECANCELED) {
          wakeError = -cqe.res;
        }
        return;
      }
      handler.onCompletion(token, cqe.res, cqe.flags);
    });
    if (woke) {
      --stats_.completions;  // the wake read is the loop's own
      ++stats_.wakeups;
      if (wakeError != 0) {
        return fail(IoErrc::kEventFd, "mailbox eventfd read", wakeError);
      }
      armWake();
      stats_.messages += mailbox_.drain([&](Msg&& m) { handler.onMessage(std::move(m)); });
    }
    stats_.timersFired += timers_.expire(now_, [&](uint64_t cookie) { handler.onTimer(cookie); });
    if constexpr (requires { handler.afterDispatch(); }) {
      handler.afterDispatch();
    }
    ++stats_.iterations;
    return ok();
  }

 private:
  EventLoop(Ring&& ring, Mailbox<Msg>& mailbox, const EventLoopOptions& options)
      : ring_(std::move(ring)),
        now_(monotonicNow()),
        timers_(now_, options.timerResolution),
        mailbox_(mailbox) {}

  void armWake() {
    ring_.prepRead(mailbox_.core().eventFd(), &wakeBuf_, sizeof(wakeBuf_), kWakeToken);
  }

  Ring ring_;
  MonotonicTime now_;
  TimerWheel timers_;
  Mailbox<Msg>& mailbox_;
  uint64_t wakeBuf_ = 0;  // the kernel writes the eventfd counter here
  LoopStats stats_;
};

}  // namespace zt::io
