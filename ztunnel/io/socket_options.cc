#include "ztunnel/io/socket_options.h"

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/resource.h>
#include <sys/socket.h>

#include <cerrno>
#include <string>

#include "ztunnel/io/errors.h"

// From <linux/netfilter_ipv4.h> and <linux/netfilter_ipv6/ip6_tables.h>, which clash with the
// glibc headers.
#ifndef SO_ORIGINAL_DST
#define SO_ORIGINAL_DST 80
#endif
#ifndef IP6T_SO_ORIGINAL_DST
#define IP6T_SO_ORIGINAL_DST 80
#endif
#ifndef IPV6_FREEBIND
#define IPV6_FREEBIND 78
#endif
#ifndef IP_BIND_ADDRESS_NO_PORT
#define IP_BIND_ADDRESS_NO_PORT 24
#endif

namespace zt::io {
namespace {

// EPERM on a privileged option becomes kPermissionDenied so the caller can tell "not allowed
// here" (fall back) from a broken socket.
Status setOpt(int fd, int level, int name, int value, const char* what) {
  if (::setsockopt(fd, level, name, &value, sizeof(value)) == 0) {
    return ok();
  }
  int err = errno;
  std::string detail = std::string("setsockopt(") + what + ")";
  if (err == EPERM || err == EACCES) {
    return fail(IoErrc::kPermissionDenied, detail + " needs CAP_NET_ADMIN", err);
  }
  return fail(IoErrc::kSocket, std::move(detail), err);
}

Status setTransparent(int fd, int family) {
  if (family == AF_INET6) {
    return setOpt(fd, SOL_IPV6, IPV6_TRANSPARENT, 1, "IPV6_TRANSPARENT");
  }
  return setOpt(fd, SOL_IP, IP_TRANSPARENT, 1, "IP_TRANSPARENT");
}

Result<UniqueFd> newSocket(int family) {
  UniqueFd fd(::socket(family, SOCK_STREAM | SOCK_CLOEXEC, IPPROTO_TCP));
  if (!fd) {
    return fail(IoErrc::kSocket, "socket()", errno);
  }
  return fd;
}

Result<SocketAddress> queryName(int fd, bool peer) {
  sockaddr_storage ss{};
  socklen_t len = sizeof(ss);
  int rc = peer ? ::getpeername(fd, reinterpret_cast<sockaddr*>(&ss), &len)
                : ::getsockname(fd, reinterpret_cast<sockaddr*>(&ss), &len);
  if (rc != 0) {
    return fail(IoErrc::kSocket, peer ? "getpeername()" : "getsockname()", errno);
  }
  auto addr = SocketAddress::fromSockaddr(reinterpret_cast<sockaddr*>(&ss), len);
  if (!addr) {
    return fail(IoErrc::kSocket, "not an IP socket", EAFNOSUPPORT);
  }
  return *addr;
}

}  // namespace

Result<UniqueFd> makeListener(const SocketAddress& addr, const ListenerOptions& options) {
  const int family = addr.family();
  auto fd = newSocket(family);
  if (!fd) {
    return fd;
  }
  const int s = fd->get();
  if (options.reuseAddr) {
    ZT_TRY_STATUS(setOpt(s, SOL_SOCKET, SO_REUSEADDR, 1, "SO_REUSEADDR"));
  }
  if (options.reusePort) {
    ZT_TRY_STATUS(setOpt(s, SOL_SOCKET, SO_REUSEPORT, 1, "SO_REUSEPORT"));
  }
  if (family == AF_INET6) {
    ZT_TRY_STATUS(setOpt(s, SOL_IPV6, IPV6_V6ONLY, options.v6Only ? 1 : 0, "IPV6_V6ONLY"));
  }
  if (options.transparent) {
    ZT_TRY_STATUS(setTransparent(s, family));
  }
  if (options.mark) {
    ZT_TRY_STATUS(setOpt(s, SOL_SOCKET, SO_MARK, static_cast<int>(*options.mark), "SO_MARK"));
  }
  sockaddr_storage ss{};
  socklen_t len = addr.toSockaddr(ss);
  if (::bind(s, reinterpret_cast<sockaddr*>(&ss), len) != 0) {
    return fail(IoErrc::kSocket, "bind(" + addr.toString() + ")", errno);
  }
  if (::listen(s, options.backlog) != 0) {
    return fail(IoErrc::kSocket, "listen(" + addr.toString() + ")", errno);
  }
  return fd;
}

Result<UniqueFd> makeTcpSocket(int family, const SocketOptions& options) {
  if (family != AF_INET && family != AF_INET6) {
    return fail(IoErrc::kInvalidArgument, "family must be AF_INET or AF_INET6");
  }
  if (options.sourceIp && options.sourceIp->isV4() != (family == AF_INET)) {
    return fail(IoErrc::kInvalidArgument,
                "source address " + options.sourceIp->toString() + " does not match the family");
  }
  auto fd = newSocket(family);
  if (!fd) {
    return fd;
  }
  const int s = fd->get();
  if (options.mark) {
    ZT_TRY_STATUS(setOpt(s, SOL_SOCKET, SO_MARK, static_cast<int>(*options.mark), "SO_MARK"));
  }
  if (options.noDelay) {
    ZT_TRY_STATUS(setOpt(s, IPPROTO_TCP, TCP_NODELAY, 1, "TCP_NODELAY"));
  }
  const KeepaliveOptions& ka = options.keepalive;
  if (ka.enabled) {
    ZT_TRY_STATUS(setOpt(s, SOL_SOCKET, SO_KEEPALIVE, 1, "SO_KEEPALIVE"));
    ZT_TRY_STATUS(
        setOpt(s, IPPROTO_TCP, TCP_KEEPIDLE, static_cast<int>(ka.time.count()), "TCP_KEEPIDLE"));
    ZT_TRY_STATUS(setOpt(s, IPPROTO_TCP, TCP_KEEPINTVL, static_cast<int>(ka.interval.count()),
                         "TCP_KEEPINTVL"));
    ZT_TRY_STATUS(setOpt(s, IPPROTO_TCP, TCP_KEEPCNT, ka.retries, "TCP_KEEPCNT"));
  }
  if (options.userTimeout) {
    // ztunnel: the connection is dead once keepalive would have given up.
    auto total = ka.time + ka.interval * ka.retries;
    int ms = static_cast<int>(std::chrono::duration_cast<std::chrono::milliseconds>(total).count());
    ZT_TRY_STATUS(setOpt(s, IPPROTO_TCP, TCP_USER_TIMEOUT, ms, "TCP_USER_TIMEOUT"));
  }
  if (options.sourceIp) {
    ZT_TRY_STATUS(setTransparent(s, family));
    if (family == AF_INET6) {
      ZT_TRY_STATUS(setOpt(s, SOL_IPV6, IPV6_FREEBIND, 1, "IPV6_FREEBIND"));
    } else {
      ZT_TRY_STATUS(setOpt(s, SOL_IP, IP_FREEBIND, 1, "IP_FREEBIND"));
    }
    // Defer the ephemeral port to connect(), where it only has to be unique per destination.
    ZT_TRY_STATUS(setOpt(s, SOL_IP, IP_BIND_ADDRESS_NO_PORT, 1, "IP_BIND_ADDRESS_NO_PORT"));
    sockaddr_storage ss{};
    socklen_t len = SocketAddress(*options.sourceIp, 0).toSockaddr(ss);
    if (::bind(s, reinterpret_cast<sockaddr*>(&ss), len) != 0) {
      int err = errno;
      std::string detail = "bind(source " + options.sourceIp->toString() + ")";
      if (err == EPERM || err == EACCES) {
        return fail(IoErrc::kPermissionDenied, std::move(detail), err);
      }
      return fail(IoErrc::kSocket, std::move(detail), err);
    }
  }
  return fd;
}

Result<SocketAddress> localAddress(int fd) {
  return queryName(fd, false);
}
Result<SocketAddress> peerAddress(int fd) {
  return queryName(fd, true);
}

Result<SocketAddress> originalDestination(int fd) {
  auto local = localAddress(fd);
  if (!local) {
    return local;
  }
  // A dual-stack socket's v4-mapped connection is an IPv4 flow to conntrack: ask SOL_IP.
  if (local->ip().isV4()) {
    sockaddr_in in{};
    socklen_t len = sizeof(in);
    if (::getsockopt(fd, SOL_IP, SO_ORIGINAL_DST, &in, &len) == 0) {
      if (auto a = SocketAddress::fromSockaddr(reinterpret_cast<sockaddr*>(&in), len)) {
        return *a;
      }
    }
  } else {
    sockaddr_in6 in6{};
    socklen_t len = sizeof(in6);
    if (::getsockopt(fd, SOL_IPV6, IP6T_SO_ORIGINAL_DST, &in6, &len) == 0) {
      if (auto a = SocketAddress::fromSockaddr(reinterpret_cast<sockaddr*>(&in6), len)) {
        return *a;
      }
    }
  }
  // No conntrack entry (ENOENT), conntrack not loaded (ENOPROTOOPT), or TPROXY: the local address
  // is the original destination.
  return local;
}

Result<uint64_t> raiseFdLimit() {
  rlimit rl{};
  if (::getrlimit(RLIMIT_NOFILE, &rl) != 0) {
    return fail(IoErrc::kSocket, "getrlimit(RLIMIT_NOFILE)", errno);
  }
  if (rl.rlim_cur < rl.rlim_max) {
    rl.rlim_cur = rl.rlim_max;
    if (::setrlimit(RLIMIT_NOFILE, &rl) != 0) {
      return fail(IoErrc::kSocket, "setrlimit(RLIMIT_NOFILE)", errno);
    }
  }
  return static_cast<uint64_t>(rl.rlim_cur);
}

}  // namespace zt::io
