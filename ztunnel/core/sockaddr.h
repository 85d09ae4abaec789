#pragma once

// IP addresses, socket addresses and CIDR prefixes as small value types.
// IPv4-mapped IPv6 addresses are canonicalised to IPv4 (as ztunnel does), so one address has one
// representation whatever socket family reported it.

#include <netinet/in.h>
#include <sys/socket.h>

#include <array>
#include <compare>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>

#include "ztunnel/core/result.h"

namespace zt {

class IpAddress {
 public:
  enum class Family : uint8_t { kV4, kV6 };

  IpAddress() = default;  // 0.0.0.0
  static IpAddress v4(uint32_t hostOrder);
  static IpAddress v4(const in_addr& addr);
  static IpAddress v6(const in6_addr& addr);  // canonicalises v4-mapped
  // Raw network-order bytes: 4 or 16 of them (as xDS carries addresses); else nullopt.
  static std::optional<IpAddress> fromBytes(std::string_view bytes);
  // Dotted quad or RFC 4291 text, without brackets or zone.
  static std::optional<IpAddress> parse(std::string_view text);
  static IpAddress loopbackV4() { return v4(0x7f000001u); }

  Family family() const { return family_; }
  bool isV4() const { return family_ == Family::kV4; }
  bool isV6() const { return family_ == Family::kV6; }
  bool isLoopback() const;
  bool isUnspecified() const;
  // 4 or 16 network-order bytes.
  std::string_view bytes() const {
    return {reinterpret_cast<const char*>(bytes_.data()), isV4() ? 4u : 16u};
  }
  in_addr toInAddr() const;    // requires isV4()
  in6_addr toIn6Addr() const;  // v4 is returned v4-mapped

  std::string toString() const;

  friend bool operator==(const IpAddress&, const IpAddress&) = default;
  friend auto operator<=>(const IpAddress&, const IpAddress&) = default;

 private:
  Family family_ = Family::kV4;
  std::array<uint8_t, 16> bytes_{};
};

class SocketAddress {
 public:
  SocketAddress() = default;
  SocketAddress(IpAddress ip, uint16_t port) : ip_(ip), port_(port) {}

  static std::optional<SocketAddress> fromSockaddr(const sockaddr* sa, socklen_t len);
  // "1.2.3.4:80" or "[::1]:80".
  static std::optional<SocketAddress> parse(std::string_view text);

  const IpAddress& ip() const { return ip_; }
  uint16_t port() const { return port_; }
  void setPort(uint16_t port) { port_ = port; }

  // Fills a sockaddr_in / sockaddr_in6 (per the address family); returns its length.
  socklen_t toSockaddr(sockaddr_storage& out) const;
  // Same, but always AF_INET6 (v4 as v4-mapped) for dual-stack sockets.
  socklen_t toSockaddrV6(sockaddr_storage& out) const;
  int family() const { return ip_.isV4() ? AF_INET : AF_INET6; }

  // "1.2.3.4:80" or "[::1]:80".
  std::string toString() const;

  friend bool operator==(const SocketAddress&, const SocketAddress&) = default;
  friend auto operator<=>(const SocketAddress&, const SocketAddress&) = default;

 private:
  IpAddress ip_;
  uint16_t port_ = 0;
};

// An address prefix; a host address is a prefix of full length.
class Cidr {
 public:
  Cidr() = default;
  // Rejects prefix lengths longer than the family allows; masks host bits.
  static std::optional<Cidr> make(IpAddress base, uint8_t prefixLength);
  // "10.0.0.0/8", "fd00::/64", or a bare address (full length).
  static std::optional<Cidr> parse(std::string_view text);

  const IpAddress& base() const { return base_; }
  uint8_t prefixLength() const { return prefixLength_; }
  bool contains(const IpAddress& ip) const;
  std::string toString() const;

  friend bool operator==(const Cidr&, const Cidr&) = default;

 private:
  IpAddress base_;
  uint8_t prefixLength_ = 0;
};

}  // namespace zt

template <>
struct std::hash<zt::IpAddress> {
  size_t operator()(const zt::IpAddress& ip) const noexcept;
};
template <>
struct std::hash<zt::SocketAddress> {
  size_t operator()(const zt::SocketAddress& addr) const noexcept;
};
