#pragma once

// Mailbox<Msg>: how other threads talk to a worker's event loop (control-plane messages only:
// "new state published", "add listener fd", "drain", "stop").
//
// Multi-producer, single-consumer: post() from any thread appends to a mutex-protected vector and,
// if no wake-up is already pending, writes the eventfd. The owning EventLoop keeps one eventfd
// read armed on its ring, so a post wakes a loop sleeping in io_uring_enter; the loop then swaps
// the whole batch out under the lock and hands each message to its handler, in post order. Messages
// are rare, so a lock (never held across a callback) is simpler than a lock-free queue and
// costs nothing on the data path, which never touches the mailbox.
//
// Lifetime: create the Mailbox first (on any thread), hand a reference to the worker thread, which
// creates its EventLoop with it; the Mailbox must outlive the EventLoop. Messages posted before
// the loop runs are delivered on its first iteration. Messages still queued when the loop is gone
// are destroyed with the Mailbox.
//
// Msg: any movable type (a std::variant of message structs, or std::function<void(Worker&)>).

#include <atomic>
#include <memory>
#include <mutex>
#include <utility>
#include <vector>

#include "ztunnel/core/result.h"
#include "ztunnel/core/unique_fd.h"

namespace zt::io {

// The type-independent part: the eventfd and the wake/stop flags.
class MailboxCore {
 public:
  static Result<std::unique_ptr<MailboxCore>> create();
  explicit MailboxCore(UniqueFd eventFd) : eventFd_(std::move(eventFd)) {}

  int eventFd() const { return eventFd_.get(); }
  // Any thread: make sure the loop wakes up (at most one eventfd write per loop wake-up).
  void wake();
  // Loop thread, before taking messages: later posts must write the eventfd again.
  void beginDrain() { wakePending_.store(false, std::memory_order_seq_cst); }
  // Any thread: ask the loop to return from run() at its next iteration.
  void requestStop() {
    stop_.store(true, std::memory_order_release);
    wake();
  }
  bool stopRequested() const { return stop_.load(std::memory_order_acquire); }
  // Loop thread: forget a previous stop request (to run the loop again).
  void clearStop() { stop_.store(false, std::memory_order_release); }

 private:
  UniqueFd eventFd_;
  std::atomic<bool> wakePending_{false};
  std::atomic<bool> stop_{false};
};

template <class Msg>
class Mailbox {
 public:
  static Result<std::unique_ptr<Mailbox>> create() {
    auto core = MailboxCore::create();
    if (!core) {
      return fail(std::move(core).error());
    }
    return std::unique_ptr<Mailbox>(new Mailbox(std::move(*core)));
  }

  Mailbox(const Mailbox&) = delete;
  Mailbox& operator=(const Mailbox&) = delete;

  // Any thread.
  void post(Msg msg) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      queue_.push_back(std::move(msg));
    }
    core_->wake();
  }
  void requestStop() { core_->requestStop(); }
  bool stopRequested() const { return core_->stopRequested(); }

  // Loop thread: delivers every queued message to f(Msg&&); returns how many.
  template <class F>
  size_t drain(F&& f) {
    core_->beginDrain();
    {
      std::lock_guard<std::mutex> lock(mu_);
      batch_.swap(queue_);
    }
    const size_t n = batch_.size();
    for (Msg& m : batch_) {
      f(std::move(m));
    }
    batch_.clear();
    return n;
  }

  MailboxCore& core() { return *core_; }

 private:
  explicit Mailbox(std::unique_ptr<MailboxCore> core) : core_(std::move(core)) {}

  std::unique_ptr<MailboxCore> core_;
  std::mutex mu_;
  std::vector<Msg> queue_;  // guarded by mu_
  std::vector<Msg> batch_;  // loop thread only
};

}  // namespace zt::io
