#include "ztunnel/state/state_store.h"

#include "ztunnel/core/assert.h"

namespace zt::state {

StateStore::StateStore() : StateStore(ProxyState::empty()) {}

StateStore::StateStore(Snapshot initial) : state_(std::move(initial)) {
  ZT_RELEASE_ASSERT(state_.load() != nullptr, "StateStore needs an initial snapshot");
}

void StateStore::publish(Snapshot next) {
  ZT_RELEASE_ASSERT(next != nullptr, "published a null ProxyState");
  std::lock_guard publishing(publishMutex_);
  // Store the state before bumping the generation: a Reader that sees the new generation then
  // loads a snapshot at least this new.
  state_.store(next, std::memory_order_release);
  generation_.fetch_add(1, std::memory_order_acq_rel);
  std::vector<std::pair<SubscriptionId, Callback>> subscribers;
  {
    std::lock_guard lock(subscribersMutex_);
    subscribers = subscribers_;
  }
  for (const auto& [id, cb] : subscribers) {
    cb(next);
  }
}

StateStore::SubscriptionId StateStore::subscribe(Callback callback) {
  std::lock_guard lock(subscribersMutex_);
  const SubscriptionId id = nextId_++;
  subscribers_.emplace_back(id, std::move(callback));
  return id;
}

void StateStore::unsubscribe(SubscriptionId id) {
  std::lock_guard lock(subscribersMutex_);
  std::erase_if(subscribers_, [id](const auto& entry) { return entry.first == id; });
}

}  // namespace zt::state
