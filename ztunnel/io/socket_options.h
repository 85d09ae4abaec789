#pragma once

// The socket factory: how ztunnel makes its listeners and outgoing sockets (ztunnel's
// DefaultSocketFactory and in-pod factory; spec ztunnel-compat.md §5.1, §5.4), plus the address
// queries the proxy needs on accepted sockets.
//
// All functions are plain blocking syscalls on the calling thread; use them on a worker (socket
// creation is not an io_uring op here) or on the control thread inside a pod's netns (the socket
// stays in the namespace it was created in). Sockets are blocking + CLOEXEC: io_uring does not need
// O_NONBLOCK.

#include <chrono>
#include <cstdint>
#include <optional>

#include "ztunnel/core/result.h"
#include "ztunnel/core/sockaddr.h"
#include "ztunnel/core/unique_fd.h"

namespace zt::io {

// ztunnel's PACKET_MARK default (1337): iptables rules skip sockets carrying it.
inline constexpr uint32_t kDefaultPacketMark = 0x539;

struct ListenerOptions {
  int backlog = 128;         // ztunnel's in-pod listener backlog
  bool reuseAddr = true;     // SO_REUSEADDR
  bool reusePort = true;     // SO_REUSEPORT: one listener per worker, and upgrades bind alongside
  bool transparent = false;  // IP_TRANSPARENT / IPV6_TRANSPARENT (TPROXY'd traffic)
  std::optional<uint32_t> mark;  // SO_MARK
  // For an IPv6 address: IPV6_V6ONLY. Off by default so "[::]:port" is dual-stack.
  bool v6Only = false;
};

// TCP keepalive as ztunnel configures it (KEEPALIVE_TIME / _INTERVAL / _RETRIES / _ENABLED).
struct KeepaliveOptions {
  bool enabled = true;
  std::chrono::seconds time{180};
  std::chrono::seconds interval{180};
  int retries = 9;
};

struct SocketOptions {
  std::optional<uint32_t> mark = kDefaultPacketMark;  // SO_MARK; nullopt: leave unset
  bool noDelay = true;                                // TCP_NODELAY
  KeepaliveOptions keepalive;
  // TCP_USER_TIMEOUT = time + retries x interval (ztunnel USER_TIMEOUT_ENABLED, default off).
  bool userTimeout = false;
  // Source preservation: IP_TRANSPARENT (IPV6_TRANSPARENT) + IP_FREEBIND, bind(sourceIp, port 0)
  // with IP_BIND_ADDRESS_NO_PORT (the port is chosen at connect, per destination). Must be of the
  // socket's family (a v4 source for an AF_INET socket).
  std::optional<IpAddress> sourceIp;
};

// A listening TCP socket bound to `addr` (port 0: kernel-chosen; read it with localAddress()).
// Errors: IoErrc::kPermissionDenied if IP_TRANSPARENT or SO_MARK is refused (EPERM: needs
// CAP_NET_ADMIN), IoErrc::kSocket otherwise (errno set; EADDRINUSE for a taken port).
Result<UniqueFd> makeListener(const SocketAddress& addr, const ListenerOptions& options = {});

// An unconnected TCP socket of `family` (AF_INET / AF_INET6) for an outgoing connection.
// Errors: IoErrc::kPermissionDenied when IP_TRANSPARENT/IP_FREEBIND or SO_MARK fail with EPERM —
// the caller can then fall back (e.g. connect without source preservation); the detail names the
// option. IoErrc::kInvalidArgument for a sourceIp of the wrong family; IoErrc::kSocket otherwise.
Result<UniqueFd> makeTcpSocket(int family, const SocketOptions& options = {});

// The destination the client originally dialled, for a socket accepted from a redirected flow:
// SO_ORIGINAL_DST (IPv4, also for v4-mapped peers of a dual-stack socket), IP6T_SO_ORIGINAL_DST
// (IPv6) — both from conntrack after an iptables REDIRECT/DNAT — and otherwise the socket's local
// address (TPROXY, or no NAT at all). v4-mapped addresses come back as IPv4.
Result<SocketAddress> originalDestination(int fd);

// getsockname / getpeername, canonicalised (v4-mapped -> v4).
Result<SocketAddress> localAddress(int fd);
Result<SocketAddress> peerAddress(int fd);

// Raises RLIMIT_NOFILE's soft limit to the hard limit (ztunnel does this at start-up); returns
// the new soft limit.
Result<uint64_t> raiseFdLimit();

}  // namespace zt::io
