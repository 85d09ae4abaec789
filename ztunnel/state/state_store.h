#pragma once

// StateStore: the one place the current ProxyState snapshot lives. The control thread builds a
// new immutable snapshot and publish()es it; any thread reads current() without taking a mutex.
//
// Threads:
//  - publish(), subscribe(), unsubscribe(): control-plane threads (internally serialised by a
//    mutex that the data path never touches).
//  - current(), generation(), Reader: any thread. current() is a std::atomic<shared_ptr> load
//    (libstdc++ 12 guards the pointer with a spin bit held for a few instructions: no mutex, no
//    syscall); Reader avoids even that on the steady path by caching the snapshot per thread
//    and re-loading only when generation() moved.
//  - Subscriber callbacks run synchronously on the publishing thread, after the new snapshot is
//    visible through current(), in subscription order. A callback must not call publish() (it
//    would deadlock); it may subscribe/unsubscribe (effective from the next publish).
//
// Lifetime: a snapshot lives as long as anyone holds its shared_ptr, so a connection keeps the
// state it started with while later snapshots are published.

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <vector>

#include "ztunnel/state/proxy_state.h"

namespace zt::state {

class StateStore {
 public:
  using Snapshot = std::shared_ptr<const ProxyState>;
  using Callback = std::function<void(const Snapshot&)>;
  using SubscriptionId = uint64_t;

  // Starts with ProxyState::empty().
  StateStore();
  // Starts with `initial` (must not be null).
  explicit StateStore(Snapshot initial);

  StateStore(const StateStore&) = delete;
  StateStore& operator=(const StateStore&) = delete;

  // The current snapshot (never null).
  Snapshot current() const { return state_.load(std::memory_order_acquire); }
  // Incremented once per publish(); starts at 0.
  uint64_t generation() const { return generation_.load(std::memory_order_acquire); }

  // Makes `next` (must not be null) the current snapshot, then notifies subscribers.
  void publish(Snapshot next);

  // Registers a callback for every later publish(). Returns an id for unsubscribe().
  SubscriptionId subscribe(Callback callback);
  void unsubscribe(SubscriptionId id);

  // A per-thread cached view. Cheap get(): one atomic load of the generation when nothing
  // changed. Not thread-safe itself: one Reader per thread. Must not outlive the store.
  class Reader {
   public:
    explicit Reader(const StateStore& store) : store_(&store) {}
    const Snapshot& get() {
      const uint64_t g = store_->generation();
      if (!cached_ || g != generation_) {
        cached_ = store_->current();
        generation_ = g;
      }
      return cached_;
    }

   private:
    const StateStore* store_;
    Snapshot cached_;
    uint64_t generation_ = 0;
  };

 private:
  std::atomic<Snapshot> state_;
  std::atomic<uint64_t> generation_{0};
  std::mutex publishMutex_;      // serialises publish() and its notifications
  std::mutex subscribersMutex_;  // guards subscribers_ (callbacks run on a copy, unlocked)
  std::vector<std::pair<SubscriptionId, Callback>> subscribers_;
  SubscriptionId nextId_ = 1;
};

}  // namespace zt::state
