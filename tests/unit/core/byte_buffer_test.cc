#include "ztunnel/core/byte_buffer.h"

#include <gtest/gtest.h>

#include <cstring>
#include <algorithm>
#include <numeric>
#include <random>
#include <vector>

namespace zt {
namespace {

std::string pattern(size_t n, uint32_t seed) {
  std::string s(n, '\0');
  std::mt19937 rng(seed);
  for (auto& c : s) {
    c = static_cast<char>(rng());
  }
  return s;
}

TEST(ByteBuffer, AppendDrainAcrossBlocks) {
  ByteBuffer b;
  std::string data = pattern(3 * ByteBuffer::kBlockSize + 123, 1);
  b.append(data);
  EXPECT_EQ(b.size(), data.size());
  EXPECT_EQ(b.toString(), data);
  b.drain(ByteBuffer::kBlockSize + 7);
  EXPECT_EQ(b.toString(), data.substr(ByteBuffer::kBlockSize + 7));
  b.drain(b.size());
  EXPECT_TRUE(b.empty());
  EXPECT_TRUE(b.front().empty());
}

TEST(ByteBuffer, PeekedMemoryStaysValidWhileAppending) {
  ByteBuffer b;
  b.append(std::string_view("hello"));
  iovec iov[4];
  ASSERT_EQ(b.peek(iov, 4), 1u);
  const void* before = iov[0].iov_base;
  b.append(pattern(5 * ByteBuffer::kBlockSize, 2));
  EXPECT_EQ(std::string_view(static_cast<const char*>(before), 5), "hello");
  size_t n = b.peek(iov, 4, 2 * ByteBuffer::kBlockSize);
  size_t total = 0;
  for (size_t i = 0; i < n; ++i) {
    total += iov[i].iov_len;
  }
  EXPECT_EQ(total, 2 * ByteBuffer::kBlockSize);
}

TEST(ByteBuffer, ReserveCommit) {
  ByteBuffer b;
  auto space = b.reserve(100);
  ASSERT_GE(space.size(), 100u);
  std::memcpy(space.data(), "abc", 3);
  EXPECT_TRUE(b.empty());  // not visible before commit
  b.commit(3);
  EXPECT_EQ(b.toString(), "abc");
  auto big = b.reserve(ByteBuffer::kBlockSize);  // forces a fresh block
  EXPECT_EQ(big.size(), ByteBuffer::kBlockSize);
}

TEST(ByteBuffer, MoveFromSplicesAndKeepsOrder) {
  ByteBuffer a;
  ByteBuffer b;
  std::string x = pattern(40000, 3);
  std::string y = pattern(50000, 4);
  a.append(x);
  b.append(y);
  a.moveFrom(b);
  EXPECT_TRUE(b.empty());
  EXPECT_EQ(a.toString(), x + y);
  // Small moves copy into the tail.
  ByteBuffer c;
  c.append(std::string_view("tail"));
  a.moveFrom(c);
  EXPECT_EQ(a.toString(), x + y + "tail");
  // Moving into an empty buffer.
  ByteBuffer d;
  d.moveFrom(a);
  EXPECT_EQ(d.size(), x.size() + y.size() + 4);
  // b is reusable after being moved from.
  b.append(std::string_view("again"));
  EXPECT_EQ(b.toString(), "again");
}

TEST(ByteBuffer, CopyOutAtOffset) {
  ByteBuffer b;
  std::string data = pattern(50000, 5);
  b.append(data);
  std::vector<uint8_t> out(20000);
  ASSERT_EQ(b.copyOut(17000, out), 20000u);
  EXPECT_EQ(std::string(out.begin(), out.end()), data.substr(17000, 20000));
  EXPECT_EQ(b.copyOut(49990, out), 10u);
}

TEST(ByteBuffer, BlocksAreRecycled) {
  size_t whileHeld;
  {
    ByteBuffer b;
    b.append(pattern(4 * ByteBuffer::kBlockSize, 6));
    whileHeld = ByteBuffer::pooledBlocksForTest();
  }
  // The pool is bounded (256 blocks per thread); earlier tests in this process may have filled it.
  EXPECT_EQ(ByteBuffer::pooledBlocksForTest(), std::min<size_t>(whileHeld + 4, 256));
}

TEST(ByteBuffer, RandomisedAgainstString) {
  std::mt19937 rng(7);
  ByteBuffer b;
  std::string model;
  for (int i = 0; i < 2000; ++i) {
    if (rng() % 2 == 0) {
      std::string chunk = pattern(rng() % 40000, static_cast<uint32_t>(i));
      b.append(chunk);
      model += chunk;
    } else if (!model.empty()) {
      size_t n = rng() % (model.size() + 1);
      b.drain(n);
      model.erase(0, n);
    }
    ASSERT_EQ(b.size(), model.size());
  }
  EXPECT_EQ(b.toString(), model);
}

}  // namespace
}  // namespace zt
