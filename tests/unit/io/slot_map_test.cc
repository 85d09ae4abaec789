#include "ztunnel/io/slot_map.h"

#include <gtest/gtest.h>

#include <memory>
#include <string>
#include <vector>

namespace zt::io {
namespace {

TEST(SlotMap, InsertGetErase) {
  SlotMap<std::string> m;
  auto a = m.insert("a");
  auto b = m.emplace(3, 'b');
  EXPECT_EQ(m.size(), 2u);
  ASSERT_NE(m.get(a), nullptr);
  EXPECT_EQ(*m.get(a), "a");
  EXPECT_EQ(*m.get(b.slot, b.gen), "bbb");
  EXPECT_TRUE(m.erase(a.slot));
  EXPECT_FALSE(m.erase(a.slot));
  EXPECT_EQ(m.get(a), nullptr);
  EXPECT_EQ(m.size(), 1u);
}

TEST(SlotMap, StaleHandleAfterReuse) {
  SlotMap<int> m;
  auto h1 = m.insert(1);
  ASSERT_TRUE(m.erase(h1.slot));
  auto h2 = m.insert(2);
  // The slot is reused (dense), with a new generation.
  EXPECT_EQ(h2.slot, h1.slot);
  EXPECT_NE(h2.gen, h1.gen);
  EXPECT_EQ(m.get(h1), nullptr);
  ASSERT_NE(m.get(h2), nullptr);
  EXPECT_EQ(*m.get(h2), 2);
  // erase(Handle) with the stale handle must not touch the new occupant.
  EXPECT_FALSE(m.erase(h1));
  EXPECT_TRUE(m.contains(h2));
}

TEST(SlotMap, ResolveCountsStaleCompletions) {
  SlotMap<int> m;
  auto h = m.insert(7);
  Token live = SlotMap<int>::tokenFor(h, Op::kRecv, 3);
  EXPECT_EQ(live.slot, h.slot);
  EXPECT_EQ(live.gen, h.gen);
  EXPECT_EQ(live.aux, 3);
  EXPECT_NE(m.resolve(live), nullptr);
  EXPECT_EQ(m.staleCompletions(), 0u);
  m.erase(h.slot);
  m.insert(8);
  EXPECT_EQ(m.resolve(live), nullptr);
  EXPECT_EQ(m.resolve(Token{Op::kRecv, 0, 0, 12345}), nullptr);  // never allocated
  EXPECT_EQ(m.staleCompletions(), 2u);
}

TEST(SlotMap, DenseLifoReuseAndStableAddresses) {
  SlotMap<int, 4> m;  // small chunks to cross chunk boundaries
  std::vector<SlotMap<int, 4>::Handle> hs;
  std::vector<int*> addrs;
  for (int i = 0; i < 100; ++i) {
    hs.push_back(m.insert(int{i}));
    addrs.push_back(m.get(hs.back()));
  }
  EXPECT_EQ(m.capacity(), 100u);
  for (int i = 0; i < 100; ++i) {
    EXPECT_EQ(hs[i].slot, static_cast<uint32_t>(i));
    // Growth never moved earlier objects.
    EXPECT_EQ(m.get(hs[i]), addrs[i]);
    EXPECT_EQ(*addrs[i], i);
  }
  m.erase(10);
  m.erase(50);
  EXPECT_EQ(m.insert(1000).slot, 50u);
  EXPECT_EQ(m.insert(1001).slot, 10u);
  EXPECT_EQ(m.insert(1002).slot, 100u);
  EXPECT_EQ(m.capacity(), 101u);
}

TEST(SlotMap, GenerationsWrapButStayDistinctFromRecentOnes) {
  SlotMap<int> m;
  auto first = m.insert(0);
  m.erase(first.slot);
  uint16_t prev = first.gen;
  for (int i = 0; i < 70000; ++i) {
    auto h = m.insert(int{i});
    EXPECT_EQ(h.slot, first.slot);
    EXPECT_NE(h.gen, prev);
    prev = h.gen;
    m.erase(h.slot);
  }
}

TEST(SlotMap, DestroysObjectsOnEraseAndDestruction) {
  auto counter = std::make_shared<int>(0);
  {
    SlotMap<std::shared_ptr<int>> m;
    auto a = m.insert(std::shared_ptr<int>(counter));
    m.insert(std::shared_ptr<int>(counter));
    EXPECT_EQ(counter.use_count(), 3);
    m.erase(a.slot);
    EXPECT_EQ(counter.use_count(), 2);
    SlotMap<std::shared_ptr<int>> moved(std::move(m));
    EXPECT_EQ(counter.use_count(), 2);
    EXPECT_EQ(moved.size(), 1u);
  }
  EXPECT_EQ(counter.use_count(), 1);
}

TEST(SlotMap, ForEachVisitsLiveObjects) {
  SlotMap<int> m;
  for (int i = 0; i < 10; ++i) {
    m.insert(int{i});
  }
  m.erase(3);
  m.erase(7);
  int sum = 0;
  size_t n = 0;
  m.forEach([&](SlotMap<int>::Handle h, int& v) {
    EXPECT_EQ(h.slot, static_cast<uint32_t>(v));
    sum += v;
    ++n;
  });
  EXPECT_EQ(n, 8u);
  EXPECT_EQ(sum, 45 - 3 - 7);
}

}  // namespace
}  // namespace zt::io
