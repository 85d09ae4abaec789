#include "ztunnel/io/buf_ring.h"

#include <sys/socket.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <deque>
#include <string>

#include "tests/unit/io/io_test_util.h"
#include "ztunnel/core/unique_fd.h"
#include "ztunnel/io/errors.h"
#include "ztunnel/io/ring.h"

namespace zt::io {
namespace {

using iotest::collect;
using iotest::Completion;
using namespace std::chrono_literals;

class BufRingTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ZT_SKIP_WITHOUT_IO_URING();
    auto r = Ring::create(RingOptions{.entries = 16});
    ASSERT_TRUE(r) << r.error().message();
    ring_.emplace(std::move(*r));
  }
  std::optional<Ring> ring_;
};

TEST_F(BufRingTest, RejectsBadOptions) {
  EXPECT_FALSE(BufRing::create(*ring_, {.groupId = 1, .count = 3, .bufferSize = 64}));
  EXPECT_FALSE(BufRing::create(*ring_, {.groupId = 1, .count = 0, .bufferSize = 64}));
  EXPECT_FALSE(BufRing::create(*ring_, {.groupId = 1, .count = 65536, .bufferSize = 64}));
  EXPECT_FALSE(BufRing::create(*ring_, {.groupId = 1, .count = 4, .bufferSize = 0}));
  auto a = BufRing::create(*ring_, {.groupId = 1, .count = 4, .bufferSize = 64});
  ASSERT_TRUE(a) << a.error().message();
  auto dup = BufRing::create(*ring_, {.groupId = 1, .count = 4, .bufferSize = 64});
  ASSERT_FALSE(dup);
  EXPECT_TRUE(dup.error().is(IoErrc::kRegister));
  EXPECT_EQ(dup.error().sysErrno(), EEXIST);
}

TEST_F(BufRingTest, BufRefRecyclesOnDestruction) {
  auto br = BufRing::create(*ring_, {.groupId = 2, .count = 4, .bufferSize = 128});
  ASSERT_TRUE(br);
  BufRing& b = **br;
  EXPECT_EQ(b.available(), 4u);
  {
    BufRef r = b.take(1, 100);
    EXPECT_EQ(b.available(), 3u);
    EXPECT_EQ(b.inUse(), 1u);
    EXPECT_EQ(r.size(), 100u);
    r.consume(40);
    EXPECT_EQ(r.size(), 60u);
    EXPECT_EQ(r.data().data(), b.data(1, 100).data() + 40);
    BufRef moved = std::move(r);
    EXPECT_FALSE(r);
    EXPECT_TRUE(moved);
    EXPECT_EQ(b.inUse(), 1u);
  }
  EXPECT_EQ(b.inUse(), 0u);
  EXPECT_EQ(b.pendingRecycle(), 1u);
  EXPECT_EQ(b.available(), 3u);  // not visible to the kernel before flush()
  EXPECT_EQ(b.flush(), 1u);
  EXPECT_EQ(b.available(), 4u);
  EXPECT_EQ(b.flush(), 0u);
  EXPECT_EQ(b.takeFromCqe(5, IORING_CQE_F_MORE), std::nullopt);
}

// Multishot recv with a 2-buffer ring: the group runs dry (-ENOBUFS, multishot ends), the
// connection is parked, buffers come back, it is re-armed, and every byte arrives in order.
TEST_F(BufRingTest, MultishotRecvHitsEnobufsAndRecovers) {
  constexpr uint16_t kGroup = 3;
  auto br = BufRing::create(*ring_, {.groupId = kGroup, .count = 2, .bufferSize = 64});
  ASSERT_TRUE(br) << br.error().message();
  BufRing& b = **br;
  int sv[2];
  ASSERT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
  UniqueFd rx(sv[0]), tx(sv[1]);

  std::string sent;
  for (int i = 0; i < 1000; ++i) {
    sent.push_back(static_cast<char>('a' + i % 26));
  }
  ASSERT_EQ(::write(tx.get(), sent.data(), sent.size()), static_cast<ssize_t>(sent.size()));
  ASSERT_EQ(::shutdown(tx.get(), SHUT_WR), 0);

  const Token recvToken{Op::kRecv, 0, 1, 42};
  ring_->prepRecvMultishot(rx.get(), kGroup, recvToken);
  std::string received;
  std::deque<BufRef> held;  // the "application" holds buffers until it is done with them
  int enobufs = 0;
  int rearms = 0;
  bool eof = false;
  for (int iter = 0; iter < 200 && !eof; ++iter) {
    auto st = ring_->submitAndWait(100ms);
    ASSERT_TRUE(st) << st.error().message();
    ring_->reap([&](const io_uring_cqe& c) {
      Token t = unpack(c.user_data);
      ASSERT_EQ(t, recvToken);
      if (auto ref = b.takeFromCqe(c.res, c.flags)) {
        received.append(reinterpret_cast<const char*>(ref->data().data()), ref->size());
        held.push_back(std::move(*ref));
      }
      if (c.res == -ENOBUFS) {
        ++enobufs;
        EXPECT_FALSE(hasMore(c.flags));
        b.park(t);
      } else if (c.res == 0) {
        eof = true;
      } else {
        ASSERT_GT(c.res, 0);
        if (!hasMore(c.flags)) {
          ring_->prepRecvMultishot(rx.get(), kGroup, recvToken);  // ended without error: re-arm
          ++rearms;
        }
      }
    });
    // End of the batch: the app is done with what it held; return the buffers and re-arm.
    held.clear();
    b.flush();
    rearms += static_cast<int>(
        b.rearmParked([&](Token t) { ring_->prepRecvMultishot(rx.get(), kGroup, t); }));
  }
  EXPECT_TRUE(eof);
  EXPECT_GE(enobufs, 1);
  EXPECT_GE(rearms, enobufs);
  EXPECT_EQ(b.parked(), 0u);
  EXPECT_EQ(received, sent);
  EXPECT_EQ(b.inUse(), 0u);
  EXPECT_EQ(b.available(), 2u);
}

TEST_F(BufRingTest, ParkedRecvsWaitForHalfTheRing) {
  auto br = BufRing::create(*ring_, {.groupId = 4, .count = 8, .bufferSize = 64});
  ASSERT_TRUE(br);
  BufRing& b = **br;
  std::vector<BufRef> refs;
  for (uint16_t i = 0; i < 8; ++i) {
    refs.push_back(b.take(i, 10));
  }
  EXPECT_EQ(b.available(), 0u);
  b.park(Token{Op::kRecv, 0, 0, 1});
  b.park(Token{Op::kRecv, 0, 0, 2});
  int calls = 0;
  auto rearm = [&](Token) { ++calls; };
  refs.pop_back();
  refs.pop_back();
  b.flush();
  EXPECT_EQ(b.rearmParked(rearm), 0u);  // 2 of 8 back: not yet
  refs.pop_back();
  refs.pop_back();
  b.flush();
  EXPECT_EQ(b.rearmParked(rearm), 2u);  // 4 of 8
  EXPECT_EQ(calls, 2);
  EXPECT_EQ(b.parked(), 0u);
  refs.clear();
}

}  // namespace
}  // namespace zt::io
