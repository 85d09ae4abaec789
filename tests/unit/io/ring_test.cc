#include "ztunnel/io/ring.h"

#include <fcntl.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <netinet/in.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <algorithm>
#include <cstddef>
#include <functional>
#include <set>
#include <thread>

#include "tests/unit/io/io_test_util.h"
#include "ztunnel/io/errors.h"
#include "ztunnel/io/probe.h"
#include "ztunnel/io/slot_map.h"
#include "ztunnel/io/socket_options.h"

namespace zt::io {
namespace {

using iotest::collect;
using iotest::Completion;
using namespace std::chrono_literals;

TEST(Probe, ReportsFeaturesOrExplainsWhy) {
  auto f = probeIoUring();
  if (!f) {
    // The failure must be actionable: name the cause.
    std::string msg = f.error().message();
    EXPECT_FALSE(msg.empty());
    GTEST_SKIP() << "io_uring unavailable: " << msg;
  }
  EXPECT_TRUE(f->multishotAccept);
  EXPECT_TRUE(f->multishotRecv);
  EXPECT_TRUE(f->bufRing);
  EXPECT_TRUE(f->opLinkTimeout);
  EXPECT_FALSE(f->describe().empty());
  RecordProperty("features", f->describe());
}

TEST(Probe, SetupFailureMessagesNameTheSetting) {
  std::string eperm = setupFailure(EPERM).message();
  EXPECT_NE(eperm.find("io_uring_disabled"), std::string::npos) << eperm;
  EXPECT_TRUE(setupFailure(EPERM).is(IoErrc::kUnavailable));
  std::string enosys = setupFailure(ENOSYS).message();
  EXPECT_NE(enosys.find("seccomp"), std::string::npos) << enosys;
  EXPECT_EQ(setupFailure(ENOSYS).sysErrno(), ENOSYS);
  EXPECT_NE(setupFailure(ENOMEM).message().find("MEMLOCK"), std::string::npos);
}

TEST(Ring, CreatesWithPreferredFlags) {
  ZT_SKIP_WITHOUT_IO_URING();
  auto ring = Ring::create(RingOptions{.entries = 64});
  ASSERT_TRUE(ring) << ring.error().message();
  EXPECT_GE(ring->sqEntries(), 64u);
  EXPECT_GE(ring->cqEntries(), 2 * ring->sqEntries());
  // Kernel 6.1+ accepts all three; older kernels fall back, which the probe reports.
  EXPECT_NE(ring->setupFlags() & IORING_SETUP_SINGLE_ISSUER, 0u);
  EXPECT_NE(ring->setupFlags() & IORING_SETUP_DEFER_TASKRUN, 0u);
  EXPECT_TRUE(ring->ringFdRegistered());
  EXPECT_FALSE(Ring::create(RingOptions{.entries = 8, .cqEntries = 8}).has_value());

  // Moving keeps it usable.
  Ring moved = std::move(*ring);
  moved.prepNop(Token{Op::kNop, 0, 0, 9});
  auto got = collect(moved, 1);
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0].token.slot, 9u);
}

TEST(Ring, FullSubmissionQueueSubmitsAndRetries) {
  ZT_SKIP_WITHOUT_IO_URING();
  auto ring = Ring::create(RingOptions{.entries = 2});
  ASSERT_TRUE(ring) << ring.error().message();
  ASSERT_EQ(ring->sqEntries(), 2u);
  for (uint32_t i = 0; i < 10; ++i) {
    ASSERT_NE(ring->prepNop(Token{Op::kNop, 0, 0, i}), nullptr);
    EXPECT_LE(ring->pendingSqes(), 2u);
  }
  EXPECT_GE(ring->stats().sqFullSubmits, 4u);
  auto got = collect(*ring, 10);
  ASSERT_EQ(got.size(), 10u);
  std::set<uint32_t> slots;
  for (auto& c : got) {
    EXPECT_EQ(c.res, 0);
    slots.insert(c.token.slot);
  }
  EXPECT_EQ(slots.size(), 10u);
  EXPECT_EQ(*slots.rbegin(), 9u);
}

TEST(Ring, ReapsABatchWithOneAdvance) {
  ZT_SKIP_WITHOUT_IO_URING();
  auto ring = Ring::create(RingOptions{.entries = 128});
  ASSERT_TRUE(ring);
  for (uint32_t i = 0; i < 100; ++i) {
    ring->prepNop(Token{Op::kNop, 0, 0, i});
  }
  EXPECT_EQ(ring->pendingSqes(), 100u);
  ASSERT_TRUE(ring->submitAndWait(1s));
  ASSERT_TRUE(ring->submitAndGetEvents());
  EXPECT_EQ(ring->readyCqes(), 100u);
  uint32_t expect = 0;
  unsigned n =
      ring->reap([&](const io_uring_cqe& c) { EXPECT_EQ(unpack(c.user_data).slot, expect++); });
  EXPECT_EQ(n, 100u);
  EXPECT_EQ(ring->readyCqes(), 0u);
  // `max` bounds a batch; the rest stays for the next reap.
  for (uint32_t i = 0; i < 10; ++i) {
    ring->prepNop(Token{Op::kNop, 0, 0, i});
  }
  ASSERT_TRUE(ring->submitAndWait(1s));
  ASSERT_TRUE(ring->submitAndGetEvents());
  EXPECT_EQ(ring->reap([](const io_uring_cqe&) {}, 4), 4u);
  EXPECT_EQ(ring->readyCqes(), 6u);
}

TEST(Ring, StaleCompletionIsDroppedAndCounted) {
  ZT_SKIP_WITHOUT_IO_URING();
  auto ring = Ring::create(RingOptions{.entries = 8});
  ASSERT_TRUE(ring);
  struct Conn {
    int completions = 0;
  };
  SlotMap<Conn> conns;
  auto freed = conns.insert(Conn{});
  const Token staleToken = SlotMap<Conn>::tokenFor(freed, Op::kRecv);
  conns.erase(freed.slot);
  auto live = conns.insert(Conn{});  // reuses the slot with a new generation
  ASSERT_EQ(live.slot, freed.slot);
  ring->prepNop(staleToken);
  ring->prepNop(SlotMap<Conn>::tokenFor(live, Op::kRecv));

  int dispatched = 0;
  auto got = collect(*ring, 2);
  ASSERT_EQ(got.size(), 2u);
  for (auto& c : got) {
    if (Conn* conn = conns.resolve(c.token)) {
      ++conn->completions;
      ++dispatched;
    }
  }
  EXPECT_EQ(dispatched, 1);
  EXPECT_EQ(conns.get(live)->completions, 1);
  EXPECT_EQ(conns.staleCompletions(), 1u);
}

TEST(Ring, TimeoutCompletesWithEtime) {
  ZT_SKIP_WITHOUT_IO_URING();
  auto ring = Ring::create(RingOptions{.entries = 8});
  ASSERT_TRUE(ring);
  auto start = std::chrono::steady_clock::now();
  ring->prepTimeout(20ms, Token{Op::kTimeout, 0, 0, 1});
  auto got = collect(*ring, 1);
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0].res, -ETIME);
  EXPECT_GE(std::chrono::steady_clock::now() - start, 20ms);
}

TEST(Ring, SubmitAndWaitHonoursTheTimeout) {
  ZT_SKIP_WITHOUT_IO_URING();
  auto ring = Ring::create(RingOptions{.entries = 8});
  ASSERT_TRUE(ring);
  auto start = std::chrono::steady_clock::now();
  ASSERT_TRUE(ring->submitAndWait(30ms));
  EXPECT_GE(std::chrono::steady_clock::now() - start, 25ms);
  EXPECT_EQ(ring->readyCqes(), 0u);
}

class RingSocketTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ZT_SKIP_WITHOUT_IO_URING();
    auto r = Ring::create(RingOptions{.entries = 32});
    ASSERT_TRUE(r) << r.error().message();
    ring_.emplace(std::move(*r));
  }
  std::optional<Ring> ring_;
};

TEST_F(RingSocketTest, MultishotAcceptStaysArmedUntilCancelled) {
  auto listener = makeListener(*SocketAddress::parse("127.0.0.1:0"));
  ASSERT_TRUE(listener) << listener.error().message();
  auto addr = localAddress(listener->get());
  ASSERT_TRUE(addr);
  ring_->prepAcceptMultishot(listener->get(), Token{Op::kAccept, 0, 0, 1});
  ASSERT_TRUE(ring_->submit());

  std::vector<UniqueFd> clients;
  sockaddr_storage ss{};
  socklen_t len = addr->toSockaddr(ss);
  for (int i = 0; i < 3; ++i) {
    UniqueFd c(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
    ASSERT_EQ(::connect(c.get(), reinterpret_cast<sockaddr*>(&ss), len), 0);
    clients.push_back(std::move(c));
  }
  auto got = collect(*ring_, 3);
  ASSERT_EQ(got.size(), 3u);
  for (auto& c : got) {
    EXPECT_EQ(c.token.op, Op::kAccept);
    ASSERT_GE(c.res, 0);
    UniqueFd accepted(c.res);
    EXPECT_TRUE(hasMore(c.flags));
    EXPECT_EQ(::fcntl(accepted.get(), F_GETFD) & FD_CLOEXEC, FD_CLOEXEC);
    auto peer = peerAddress(accepted.get());
    ASSERT_TRUE(peer);
    EXPECT_TRUE(peer->ip().isLoopback());
  }
  ring_->prepCancelFd(listener->get(), Token{Op::kCancel, 0, 0, 1});
  got = collect(*ring_, 2);
  ASSERT_EQ(got.size(), 2u);
  for (auto& c : got) {
    if (c.token.op == Op::kAccept) {
      EXPECT_EQ(c.res, -ECANCELED);
      EXPECT_FALSE(hasMore(c.flags));  // terminated: the owner re-arms if it still wants accepts
    } else {
      EXPECT_EQ(c.token.op, Op::kCancel);
      EXPECT_EQ(c.res, 1);  // one request cancelled
    }
  }
}

TEST_F(RingSocketTest, RecvSendShutdownClose) {
  int sv[2];
  ASSERT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
  UniqueFd a(sv[0]);
  int b = sv[1];
  char buf[16] = {};
  ring_->prepRecv(a.get(), buf, sizeof(buf), Token{Op::kRecv, 0, 0, 1});
  const char msg[] = "hello";
  ring_->prepSend(b, msg, 5, Token{Op::kSend, 0, 0, 2});
  auto got = collect(*ring_, 2);
  ASSERT_EQ(got.size(), 2u);
  for (auto& c : got) {
    EXPECT_EQ(c.res, 5) << static_cast<int>(c.token.op);
  }
  EXPECT_EQ(std::string(buf, 5), "hello");

  // sendmsg with two iovecs; then shut down the write side: the peer sees EOF.
  char part1[] = "ab";
  char part2[] = "cde";
  iovec iov[2] = {{part1, 2}, {part2, 3}};
  msghdr mh{};
  mh.msg_iov = iov;
  mh.msg_iovlen = 2;
  ring_->prepSendmsg(b, &mh, Token{Op::kSend, 0, 0, 3});
  ring_->prepShutdown(b, SHUT_WR, Token{Op::kShutdown, 0, 0, 4});
  got = collect(*ring_, 2);
  ASSERT_EQ(got.size(), 2u);
  EXPECT_EQ(got[0].res, 5);
  EXPECT_EQ(got[1].res, 0);
  char rd[8] = {};
  EXPECT_EQ(::read(a.get(), rd, sizeof(rd)), 5);
  EXPECT_EQ(std::string(rd, 5), "abcde");
  EXPECT_EQ(::read(a.get(), rd, sizeof(rd)), 0);

  ring_->prepClose(b, Token{Op::kClose, 0, 0, 5});
  got = collect(*ring_, 1);
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0].res, 0);
  EXPECT_EQ(::fcntl(b, F_GETFD), -1);
  EXPECT_EQ(errno, EBADF);
}

TEST_F(RingSocketTest, CancelByToken) {
  int sv[2];
  ASSERT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
  UniqueFd a(sv[0]), b(sv[1]);
  char buf[4];
  const Token recvToken{Op::kRecv, 3, 7, 11};
  ring_->prepRecv(a.get(), buf, sizeof(buf), recvToken);
  ASSERT_TRUE(ring_->submit());
  ring_->prepCancel(recvToken, Token{Op::kCancel, 0, 0, 11});
  auto got = collect(*ring_, 2);
  ASSERT_EQ(got.size(), 2u);
  for (auto& c : got) {
    if (c.token == recvToken) {
      EXPECT_EQ(c.res, -ECANCELED);
    } else {
      EXPECT_EQ(c.token.op, Op::kCancel);
      EXPECT_EQ(c.res, 0);
    }
  }
}

TEST_F(RingSocketTest, ConnectWithLinkedTimeout) {
  auto listener = makeListener(*SocketAddress::parse("127.0.0.1:0"));
  ASSERT_TRUE(listener);
  auto addr = localAddress(listener->get());
  ASSERT_TRUE(addr);
  sockaddr_storage ss{};
  socklen_t len = addr->toSockaddr(ss);

  // Connects in time: the connect succeeds and the timeout is cancelled.
  auto s = makeTcpSocket(AF_INET);
  ASSERT_TRUE(s) << s.error().message();
  ring_->prepConnectWithTimeout(s->get(), reinterpret_cast<sockaddr*>(&ss), len,
                                Token{Op::kConnect, 0, 0, 1}, 5s, Token{Op::kLinkTimeout, 0, 0, 1});
  auto got = collect(*ring_, 2);
  ASSERT_EQ(got.size(), 2u);
  for (auto& c : got) {
    if (c.token.op == Op::kConnect) {
      EXPECT_EQ(c.res, 0);
    } else {
      EXPECT_EQ(c.token.op, Op::kLinkTimeout);
      EXPECT_TRUE(c.res == -ECANCELED || c.res == -ENOENT) << c.res;
    }
  }

  // A listener with backlog 0 and a full accept queue drops SYNs: the connect hangs and the
  // linked timeout cancels it.
  auto full = makeListener(*SocketAddress::parse("127.0.0.1:0"), ListenerOptions{.backlog = 0});
  ASSERT_TRUE(full);
  auto fullAddr = localAddress(full->get());
  len = fullAddr->toSockaddr(ss);
  std::vector<UniqueFd> fillers;
  for (int i = 0; i < 4; ++i) {
    UniqueFd f(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
    (void)::connect(f.get(), reinterpret_cast<sockaddr*>(&ss), len);
    fillers.push_back(std::move(f));
  }
  std::this_thread::sleep_for(50ms);
  auto hung = makeTcpSocket(AF_INET);
  ASSERT_TRUE(hung);
  auto start = std::chrono::steady_clock::now();
  ring_->prepConnectWithTimeout(hung->get(), reinterpret_cast<sockaddr*>(&ss), len,
                                Token{Op::kConnect, 0, 0, 2}, 100ms,
                                Token{Op::kLinkTimeout, 0, 0, 2});
  got = collect(*ring_, 2);
  ASSERT_EQ(got.size(), 2u);
  for (auto& c : got) {
    if (c.token.op == Op::kConnect) {
      EXPECT_EQ(c.res, -ECANCELED);
    } else {
      EXPECT_EQ(c.res, -ETIME);
    }
  }
  EXPECT_GE(std::chrono::steady_clock::now() - start, 100ms);
}

TEST(CqeFlags, Helpers) {
  EXPECT_TRUE(hasMore(IORING_CQE_F_MORE));
  EXPECT_FALSE(hasMore(IORING_CQE_F_BUFFER));
  EXPECT_EQ(bufferId(0), std::nullopt);
  EXPECT_EQ(bufferId(IORING_CQE_F_BUFFER | (1234u << IORING_CQE_BUFFER_SHIFT)), 1234);
  EXPECT_EQ(bufferId(IORING_CQE_F_BUFFER | IORING_CQE_F_MORE | (65535u << IORING_CQE_BUFFER_SHIFT)),
            65535);
  EXPECT_TRUE(socketNonEmpty(IORING_CQE_F_SOCK_NONEMPTY));
}

}  // namespace
}  // namespace zt::io

namespace zt::io {
namespace {

// Runs `fn` on a thread whose io_uring_setup fails with `err`, via a seccomp filter installed on
// that thread only (no TSYNC), as a container runtime's profile would.
void withIoUringBlocked(int err, const std::function<void()>& fn) {
  std::thread t([&] {
    sock_filter filter[] = {
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(seccomp_data, nr)),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_io_uring_setup, 0, 1),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | (static_cast<unsigned>(err) & 0xffff)),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
    };
    sock_fprog prog{static_cast<unsigned short>(std::size(filter)), filter};
    ASSERT_EQ(::prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), 0);
    ASSERT_EQ(::syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, &prog), 0) << errno;
    fn();
  });
  t.join();
}

TEST(Probe, SeccompRefusalIsExplained) {
  withIoUringBlocked(EPERM, [] {
    auto f = probeIoUring();
    ASSERT_FALSE(f);
    EXPECT_TRUE(f.error().is(IoErrc::kUnavailable));
    EXPECT_EQ(f.error().sysErrno(), EPERM);
    // kernel.io_uring_disabled is 0 here, so the message must point at seccomp.
    EXPECT_NE(f.error().message().find("seccomp"), std::string::npos) << f.error().message();
    EXPECT_NE(f.error().message().find("io_uring_disabled"), std::string::npos);
    auto ring = Ring::create();
    ASSERT_FALSE(ring);
    EXPECT_TRUE(ring.error().is(IoErrc::kUnavailable));
  });
  withIoUringBlocked(ENOSYS, [] {
    auto f = probeIoUring();
    ASSERT_FALSE(f);
    EXPECT_EQ(f.error().sysErrno(), ENOSYS);
    EXPECT_NE(f.error().message().find("CONFIG_IO_URING"), std::string::npos);
  });
}

}  // namespace
}  // namespace zt::io
