#include "ztunnel/state/state_store.h"

#include <gtest/gtest.h>

#include <atomic>
#include <thread>
#include <vector>

namespace zt::state {
namespace {

std::shared_ptr<const ProxyState> stateWithVersion(uint64_t v) {
  ProxyState::Builder b;
  b.setVersion(v);
  return std::move(b).build();
}

TEST(StateStore, StartsEmptyAndPublishes) {
  StateStore store;
  ASSERT_NE(store.current(), nullptr);
  EXPECT_EQ(store.current()->version(), 0u);
  EXPECT_EQ(store.generation(), 0u);
  auto next = stateWithVersion(5);
  store.publish(next);
  EXPECT_EQ(store.current(), next);
  EXPECT_EQ(store.generation(), 1u);
}

TEST(StateStore, OldSnapshotStaysValidWhileHeld) {
  StateStore store(stateWithVersion(1));
  auto held = store.current();
  store.publish(stateWithVersion(2));
  EXPECT_EQ(held->version(), 1u);
  EXPECT_EQ(store.current()->version(), 2u);
}

TEST(StateStore, SubscribersRunOnPublishingThreadAfterSwap) {
  StateStore store;
  std::vector<uint64_t> seen;
  std::thread::id callbackThread;
  auto id = store.subscribe([&](const StateStore::Snapshot& s) {
    // The new snapshot is already current when subscribers run.
    EXPECT_EQ(store.current(), s);
    seen.push_back(s->version());
    callbackThread = std::this_thread::get_id();
  });
  int second = 0;
  store.subscribe([&](const StateStore::Snapshot&) { ++second; });
  store.publish(stateWithVersion(1));
  store.publish(stateWithVersion(2));
  EXPECT_EQ(seen, (std::vector<uint64_t>{1, 2}));
  EXPECT_EQ(callbackThread, std::this_thread::get_id());
  EXPECT_EQ(second, 2);
  store.unsubscribe(id);
  store.publish(stateWithVersion(3));
  EXPECT_EQ(seen.size(), 2u);
  EXPECT_EQ(second, 3);
}

TEST(StateStore, CallbackMaySubscribe) {
  StateStore store;
  int late = 0;
  store.subscribe([&](const StateStore::Snapshot&) {
    if (late == 0) {
      store.subscribe([&](const StateStore::Snapshot&) { ++late; });
      late = -1;
    }
  });
  store.publish(stateWithVersion(1));  // registers the late subscriber (not run this time)
  EXPECT_EQ(late, -1);
  store.publish(stateWithVersion(2));
  EXPECT_EQ(late, 0);  // -1 + 1
}

TEST(StateStore, ReaderCachesUntilPublish) {
  StateStore store(stateWithVersion(1));
  StateStore::Reader reader(store);
  const auto* first = reader.get().get();
  EXPECT_EQ(reader.get().get(), first);
  EXPECT_EQ(reader.get()->version(), 1u);
  store.publish(stateWithVersion(2));
  EXPECT_EQ(reader.get()->version(), 2u);
}

TEST(StateStore, ConcurrentReadersSeeMonotonicVersions) {
  StateStore store(stateWithVersion(0));
  std::atomic<bool> stop{false};
  std::atomic<int> violations{0};
  std::vector<std::thread> readers;
  for (int t = 0; t < 3; ++t) {
    readers.emplace_back([&, t] {
      StateStore::Reader reader(store);
      uint64_t last = 0;
      while (!stop.load(std::memory_order_relaxed)) {
        uint64_t v = (t == 0) ? store.current()->version() : reader.get()->version();
        if (v < last) {
          violations.fetch_add(1);
        }
        last = v;
      }
    });
  }
  for (uint64_t v = 1; v <= 2000; ++v) {
    store.publish(stateWithVersion(v));
  }
  stop = true;
  for (auto& t : readers) {
    t.join();
  }
  EXPECT_EQ(violations.load(), 0);
  EXPECT_EQ(store.current()->version(), 2000u);
}

}  // namespace
}  // namespace zt::state
