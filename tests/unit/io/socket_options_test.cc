#include "ztunnel/io/socket_options.h"

#include <fcntl.h>
#include <linux/capability.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sched.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <cstdio>
#include <functional>
#include <string>
#include <thread>

#include "ztunnel/io/errors.h"

namespace zt::io {
namespace {

int getIntOpt(int fd, int level, int name) {
  int v = -1;
  socklen_t len = sizeof(v);
  EXPECT_EQ(::getsockopt(fd, level, name, &v, &len), 0) << level << "/" << name;
  return v;
}

SocketAddress addr(const char* text) {
  return *SocketAddress::parse(text);
}

bool ipv6Loopback() {
  UniqueFd fd(::socket(AF_INET6, SOCK_STREAM, 0));
  sockaddr_in6 sa{};
  sa.sin6_family = AF_INET6;
  sa.sin6_addr = in6addr_loopback;
  return fd && ::bind(fd.get(), reinterpret_cast<sockaddr*>(&sa), sizeof(sa)) == 0;
}

// Connects a blocking client to `to` and accepts it on `listener`.
std::pair<UniqueFd, UniqueFd> connectPair(int listener, const SocketAddress& to) {
  UniqueFd client(::socket(to.family(), SOCK_STREAM | SOCK_CLOEXEC, 0));
  sockaddr_storage ss{};
  socklen_t len = to.toSockaddr(ss);
  EXPECT_EQ(::connect(client.get(), reinterpret_cast<sockaddr*>(&ss), len), 0) << errno;
  UniqueFd server(::accept4(listener, nullptr, nullptr, SOCK_CLOEXEC));
  EXPECT_TRUE(server.valid());
  return {std::move(client), std::move(server)};
}

TEST(MakeListener, Ipv4WithReuseAndCloexec) {
  auto l = makeListener(addr("127.0.0.1:0"));
  ASSERT_TRUE(l) << l.error().message();
  EXPECT_EQ(getIntOpt(l->get(), SOL_SOCKET, SO_REUSEADDR), 1);
  EXPECT_EQ(getIntOpt(l->get(), SOL_SOCKET, SO_REUSEPORT), 1);
  EXPECT_EQ(getIntOpt(l->get(), SOL_SOCKET, SO_ACCEPTCONN), 1);
  EXPECT_EQ(::fcntl(l->get(), F_GETFD) & FD_CLOEXEC, FD_CLOEXEC);
  auto local = localAddress(l->get());
  ASSERT_TRUE(local);
  EXPECT_EQ(local->ip(), IpAddress::loopbackV4());
  EXPECT_NE(local->port(), 0);

  // SO_REUSEPORT lets a second worker bind the same port; without it the bind fails clearly.
  auto second = makeListener(*local);
  EXPECT_TRUE(second) << second.error().message();
  auto third = makeListener(*local, ListenerOptions{.reusePort = false});
  ASSERT_FALSE(third);
  EXPECT_TRUE(third.error().is(IoErrc::kSocket));
  EXPECT_EQ(third.error().sysErrno(), EADDRINUSE);
  EXPECT_NE(third.error().message().find(local->toString()), std::string::npos);
}

TEST(MakeListener, DualStackAnyAcceptsIpv4AsCanonicalAddresses) {
  if (!ipv6Loopback()) {
    GTEST_SKIP() << "no IPv6 loopback here";
  }
  auto l = makeListener(addr("[::]:0"));
  ASSERT_TRUE(l) << l.error().message();
  EXPECT_EQ(getIntOpt(l->get(), SOL_IPV6, IPV6_V6ONLY), 0);
  auto local = localAddress(l->get());
  ASSERT_TRUE(local);
  auto [client, server] =
      connectPair(l->get(), SocketAddress(IpAddress::loopbackV4(), local->port()));
  // The accepted socket is AF_INET6 with v4-mapped addresses; we report them as IPv4.
  auto peer = peerAddress(server.get());
  ASSERT_TRUE(peer);
  EXPECT_TRUE(peer->ip().isV4());
  EXPECT_EQ(peer->ip(), IpAddress::loopbackV4());
  // Not redirected: the original destination is the local address.
  auto od = originalDestination(server.get());
  ASSERT_TRUE(od) << od.error().message();
  EXPECT_EQ(*od, SocketAddress(IpAddress::loopbackV4(), local->port()));

  auto v6only = makeListener(addr("[::1]:0"), ListenerOptions{.v6Only = true});
  ASSERT_TRUE(v6only);
  EXPECT_EQ(getIntOpt(v6only->get(), SOL_IPV6, IPV6_V6ONLY), 1);
}

TEST(MakeListener, TransparentAndMarkAsRoot) {
  if (::geteuid() != 0) {
    GTEST_SKIP() << "needs root (CAP_NET_ADMIN) for IP_TRANSPARENT and SO_MARK";
  }
  auto l = makeListener(addr("127.0.0.1:0"),
                        ListenerOptions{.transparent = true, .mark = kDefaultPacketMark});
  ASSERT_TRUE(l) << l.error().message();
  EXPECT_EQ(getIntOpt(l->get(), SOL_IP, IP_TRANSPARENT), 1);
  EXPECT_EQ(getIntOpt(l->get(), SOL_SOCKET, SO_MARK), 0x539);
}

TEST(MakeTcpSocket, ZtunnelDefaults) {
  if (::geteuid() != 0) {
    GTEST_SKIP() << "needs root (CAP_NET_ADMIN) for SO_MARK";
  }
  auto s = makeTcpSocket(AF_INET);
  ASSERT_TRUE(s) << s.error().message();
  const int fd = s->get();
  EXPECT_EQ(getIntOpt(fd, SOL_SOCKET, SO_MARK), 0x539);
  EXPECT_EQ(getIntOpt(fd, IPPROTO_TCP, TCP_NODELAY), 1);
  EXPECT_EQ(getIntOpt(fd, SOL_SOCKET, SO_KEEPALIVE), 1);
  EXPECT_EQ(getIntOpt(fd, IPPROTO_TCP, TCP_KEEPIDLE), 180);
  EXPECT_EQ(getIntOpt(fd, IPPROTO_TCP, TCP_KEEPINTVL), 180);
  EXPECT_EQ(getIntOpt(fd, IPPROTO_TCP, TCP_KEEPCNT), 9);
  EXPECT_EQ(getIntOpt(fd, IPPROTO_TCP, TCP_USER_TIMEOUT), 0);
  EXPECT_EQ(::fcntl(fd, F_GETFD) & FD_CLOEXEC, FD_CLOEXEC);

  auto u = makeTcpSocket(AF_INET6, SocketOptions{.userTimeout = true});
  ASSERT_TRUE(u) << u.error().message();
  EXPECT_EQ(getIntOpt(u->get(), IPPROTO_TCP, TCP_USER_TIMEOUT), (180 + 9 * 180) * 1000);

  auto plain = makeTcpSocket(
      AF_INET,
      SocketOptions{.mark = std::nullopt, .noDelay = false, .keepalive = {.enabled = false}});
  ASSERT_TRUE(plain);
  EXPECT_EQ(getIntOpt(plain->get(), SOL_SOCKET, SO_MARK), 0);
  EXPECT_EQ(getIntOpt(plain->get(), IPPROTO_TCP, TCP_NODELAY), 0);
  EXPECT_EQ(getIntOpt(plain->get(), SOL_SOCKET, SO_KEEPALIVE), 0);

  EXPECT_FALSE(makeTcpSocket(AF_UNIX));
  auto wrongFamily = makeTcpSocket(AF_INET6, SocketOptions{.sourceIp = IpAddress::loopbackV4()});
  ASSERT_FALSE(wrongFamily);
  EXPECT_TRUE(wrongFamily.error().is(IoErrc::kInvalidArgument));
}

TEST(MakeTcpSocket, SourcePreservationBindsAForeignAddress) {
  if (::geteuid() != 0) {
    GTEST_SKIP() << "needs root (CAP_NET_ADMIN) for IP_TRANSPARENT";
  }
  // A loopback alias we do not own as a listener, then a genuinely foreign address (FREEBIND).
  auto l = makeListener(addr("127.0.0.1:0"));
  ASSERT_TRUE(l);
  auto to = localAddress(l->get());
  auto s = makeTcpSocket(AF_INET, SocketOptions{.sourceIp = IpAddress::parse("127.0.0.2")});
  ASSERT_TRUE(s) << s.error().message();
  EXPECT_EQ(getIntOpt(s->get(), SOL_IP, IP_TRANSPARENT), 1);
  EXPECT_EQ(getIntOpt(s->get(), SOL_IP, IP_FREEBIND), 1);
  sockaddr_storage ss{};
  socklen_t len = to->toSockaddr(ss);
  ASSERT_EQ(::connect(s->get(), reinterpret_cast<sockaddr*>(&ss), len), 0) << errno;
  UniqueFd accepted(::accept4(l->get(), nullptr, nullptr, SOCK_CLOEXEC));
  auto peer = peerAddress(accepted.get());
  ASSERT_TRUE(peer);
  EXPECT_EQ(peer->ip().toString(), "127.0.0.2");  // the preserved source

  auto foreign =
      makeTcpSocket(AF_INET, SocketOptions{.sourceIp = IpAddress::parse("198.51.100.9")});
  ASSERT_TRUE(foreign) << foreign.error().message();
  auto bound = localAddress(foreign->get());
  ASSERT_TRUE(bound);
  EXPECT_EQ(bound->ip().toString(), "198.51.100.9");
  EXPECT_EQ(bound->port(), 0);  // IP_BIND_ADDRESS_NO_PORT: chosen at connect
}

// Runs `fn` on a thread that has dropped CAP_NET_ADMIN and CAP_NET_RAW (capabilities are
// per-thread on Linux, so the rest of the process keeps them).
void withoutNetAdmin(const std::function<void()>& fn) {
  std::thread t([&] {
    __user_cap_header_struct hdr{_LINUX_CAPABILITY_VERSION_3, 0};
    __user_cap_data_struct data[2] = {};
    ASSERT_EQ(::syscall(SYS_capget, &hdr, data), 0);
    for (int cap : {CAP_NET_ADMIN, CAP_NET_RAW}) {
      data[cap / 32].effective &= ~(1u << (cap % 32));
    }
    ASSERT_EQ(::syscall(SYS_capset, &hdr, data), 0);
    fn();
  });
  t.join();
}

TEST(MakeTcpSocket, TransparentRefusalIsReportedAsPermissionDenied) {
  if (::geteuid() != 0) {
    GTEST_SKIP() << "needs root to drop capabilities on one thread";
  }
  withoutNetAdmin([] {
    auto s = makeTcpSocket(
        AF_INET, SocketOptions{.mark = std::nullopt, .sourceIp = IpAddress::parse("127.0.0.2")});
    ASSERT_FALSE(s);
    EXPECT_TRUE(s.error().is(IoErrc::kPermissionDenied)) << s.error().message();
    EXPECT_EQ(s.error().sysErrno(), EPERM);
    EXPECT_NE(s.error().message().find("IP_TRANSPARENT"), std::string::npos) << s.error().message();

    auto marked = makeTcpSocket(AF_INET);
    ASSERT_FALSE(marked);
    EXPECT_TRUE(marked.error().is(IoErrc::kPermissionDenied));
    EXPECT_NE(marked.error().message().find("SO_MARK"), std::string::npos);

    // Without the privileged options the socket factory still works (the caller's fallback).
    EXPECT_TRUE(makeTcpSocket(AF_INET, SocketOptions{.mark = std::nullopt}));
  });
}

TEST(SocketAddresses, ErrorsOnNonSockets) {
  int p[2];
  ASSERT_EQ(::pipe(p), 0);
  UniqueFd a(p[0]), b(p[1]);
  auto r = localAddress(a.get());
  ASSERT_FALSE(r);
  EXPECT_TRUE(r.error().is(IoErrc::kSocket));
  EXPECT_EQ(r.error().sysErrno(), ENOTSOCK);
  EXPECT_FALSE(peerAddress(a.get()));
  EXPECT_FALSE(originalDestination(a.get()));
}

TEST(RaiseFdLimit, RaisesSoftToHard) {
  rlimit before{};
  ASSERT_EQ(::getrlimit(RLIMIT_NOFILE, &before), 0);
  rlimit lowered = before;
  lowered.rlim_cur = std::min<rlim_t>(before.rlim_max, 256);
  ASSERT_EQ(::setrlimit(RLIMIT_NOFILE, &lowered), 0);
  auto r = raiseFdLimit();
  ASSERT_TRUE(r) << r.error().message();
  EXPECT_EQ(*r, static_cast<uint64_t>(before.rlim_max));
  rlimit after{};
  ASSERT_EQ(::getrlimit(RLIMIT_NOFILE, &after), 0);
  EXPECT_EQ(after.rlim_cur, before.rlim_max);
  ASSERT_EQ(::setrlimit(RLIMIT_NOFILE, &before), 0);
}

}  // namespace
}  // namespace zt::io
