#include "ztunnel/core/sockaddr.h"

#include <arpa/inet.h>

#include <charconv>
#include <cstring>

namespace zt {

namespace {
constexpr std::array<uint8_t, 12> kV4MappedPrefix = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};

std::optional<uint32_t> parseUnsigned(std::string_view text, uint32_t max) {
  if (text.empty() || text.size() > 10) {
    return std::nullopt;
  }
  uint32_t value = 0;
  auto [ptr, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (ec != std::errc() || ptr != text.data() + text.size() || value > max) {
    return std::nullopt;
  }
  return value;
}
}  // namespace

IpAddress IpAddress::v4(uint32_t hostOrder) {
  IpAddress ip;
  ip.family_ = Family::kV4;
  uint32_t net = htonl(hostOrder);
  std::memcpy(ip.bytes_.data(), &net, 4);
  return ip;
}

IpAddress IpAddress::v4(const in_addr& addr) {
  IpAddress ip;
  ip.family_ = Family::kV4;
  std::memcpy(ip.bytes_.data(), &addr, 4);
  return ip;
}

IpAddress IpAddress::v6(const in6_addr& addr) {
  IpAddress ip;
  const auto* raw = reinterpret_cast<const uint8_t*>(&addr);
  if (std::memcmp(raw, kV4MappedPrefix.data(), kV4MappedPrefix.size()) == 0) {
    ip.family_ = Family::kV4;
    std::memcpy(ip.bytes_.data(), raw + 12, 4);
    return ip;
  }
  ip.family_ = Family::kV6;
  std::memcpy(ip.bytes_.data(), raw, 16);
  return ip;
}

std::optional<IpAddress> IpAddress::fromBytes(std::string_view bytes) {
  if (bytes.size() == 4) {
    in_addr a;
    std::memcpy(&a, bytes.data(), 4);
    return v4(a);
  }
  if (bytes.size() == 16) {
    in6_addr a;
    std::memcpy(&a, bytes.data(), 16);
    return v6(a);
  }
  return std::nullopt;
}

std::optional<IpAddress> IpAddress::parse(std::string_view text) {
  char buf[INET6_ADDRSTRLEN + 1];
  if (text.empty() || text.size() >= sizeof(buf)) {
    return std::nullopt;
  }
  std::memcpy(buf, text.data(), text.size());
  buf[text.size()] = '\0';
  in_addr a4;
  if (inet_pton(AF_INET, buf, &a4) == 1) {
    return v4(a4);
  }
  in6_addr a6;
  if (inet_pton(AF_INET6, buf, &a6) == 1) {
    return v6(a6);
  }
  return std::nullopt;
}

bool IpAddress::isLoopback() const {
  if (isV4()) {
    return bytes_[0] == 127;
  }
  static constexpr std::array<uint8_t, 16> kLoop = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1};
  return bytes_ == kLoop;
}

bool IpAddress::isUnspecified() const {
  for (size_t i = 0; i < (isV4() ? 4u : 16u); ++i) {
    if (bytes_[i] != 0) {
      return false;
    }
  }
  return true;
}

in_addr IpAddress::toInAddr() const {
  in_addr a{};
  std::memcpy(&a, bytes_.data(), 4);
  return a;
}

in6_addr IpAddress::toIn6Addr() const {
  in6_addr a{};
  auto* raw = reinterpret_cast<uint8_t*>(&a);
  if (isV4()) {
    std::memcpy(raw, kV4MappedPrefix.data(), kV4MappedPrefix.size());
    std::memcpy(raw + 12, bytes_.data(), 4);
  } else {
    std::memcpy(raw, bytes_.data(), 16);
  }
  return a;
}

std::string IpAddress::toString() const {
  char buf[INET6_ADDRSTRLEN];
  if (isV4()) {
    in_addr a = toInAddr();
    inet_ntop(AF_INET, &a, buf, sizeof(buf));
  } else {
    in6_addr a = toIn6Addr();
    inet_ntop(AF_INET6, &a, buf, sizeof(buf));
  }
  return buf;
}

std::optional<SocketAddress> SocketAddress::fromSockaddr(const sockaddr* sa, socklen_t len) {
  if (sa == nullptr) {
    return std::nullopt;
  }
  if (sa->sa_family == AF_INET && len >= static_cast<socklen_t>(sizeof(sockaddr_in))) {
    const auto* in = reinterpret_cast<const sockaddr_in*>(sa);
    return SocketAddress(IpAddress::v4(in->sin_addr), ntohs(in->sin_port));
  }
  if (sa->sa_family == AF_INET6 && len >= static_cast<socklen_t>(sizeof(sockaddr_in6))) {
    const auto* in6 = reinterpret_cast<const sockaddr_in6*>(sa);
    return SocketAddress(IpAddress::v6(in6->sin6_addr), ntohs(in6->sin6_port));
  }
  return std::nullopt;
}

std::optional<SocketAddress> SocketAddress::parse(std::string_view text) {
  std::string_view host;
  std::string_view port;
  if (!text.empty() && text.front() == '[') {
    auto close = text.find(']');
    if (close == std::string_view::npos || close + 1 >= text.size() || text[close + 1] != ':') {
      return std::nullopt;
    }
    host = text.substr(1, close - 1);
    port = text.substr(close + 2);
    auto ip = IpAddress::parse(host);
    // Bracketed form is for IPv6 text only (a v4-mapped literal canonicalises to v4, still fine).
    if (!ip || host.find(':') == std::string_view::npos) {
      return std::nullopt;
    }
    auto p = parseUnsigned(port, 65535);
    if (!p) {
      return std::nullopt;
    }
    return SocketAddress(*ip, static_cast<uint16_t>(*p));
  }
  auto colon = text.rfind(':');
  if (colon == std::string_view::npos) {
    return std::nullopt;
  }
  host = text.substr(0, colon);
  port = text.substr(colon + 1);
  if (host.find(':') != std::string_view::npos) {
    return std::nullopt;  // unbracketed IPv6 is ambiguous
  }
  auto ip = IpAddress::parse(host);
  auto p = parseUnsigned(port, 65535);
  if (!ip || !p) {
    return std::nullopt;
  }
  return SocketAddress(*ip, static_cast<uint16_t>(*p));
}

socklen_t SocketAddress::toSockaddr(sockaddr_storage& out) const {
  std::memset(&out, 0, sizeof(out));
  if (ip_.isV4()) {
    auto* in = reinterpret_cast<sockaddr_in*>(&out);
    in->sin_family = AF_INET;
    in->sin_port = htons(port_);
    in->sin_addr = ip_.toInAddr();
    return sizeof(sockaddr_in);
  }
  return toSockaddrV6(out);
}

socklen_t SocketAddress::toSockaddrV6(sockaddr_storage& out) const {
  std::memset(&out, 0, sizeof(out));
  auto* in6 = reinterpret_cast<sockaddr_in6*>(&out);
  in6->sin6_family = AF_INET6;
  in6->sin6_port = htons(port_);
  in6->sin6_addr = ip_.toIn6Addr();
  return sizeof(sockaddr_in6);
}

std::string SocketAddress::toString() const {
  std::string out;
  if (ip_.isV6()) {
    out = "[" + ip_.toString() + "]";
  } else {
    out = ip_.toString();
  }
  out += ':';
  out += std::to_string(port_);
  return out;
}

std::optional<Cidr> Cidr::make(IpAddress base, uint8_t prefixLength) {
  const uint8_t maxLen = base.isV4() ? 32 : 128;
  if (prefixLength > maxLen) {
    return std::nullopt;
  }
  std::string bytes(base.bytes());
  for (size_t bit = prefixLength; bit < maxLen; ++bit) {
    bytes[bit / 8] = static_cast<char>(static_cast<uint8_t>(bytes[bit / 8]) & ~(0x80u >> (bit % 8)));
  }
  Cidr c;
  c.base_ = *IpAddress::fromBytes(bytes);
  c.prefixLength_ = prefixLength;
  return c;
}

std::optional<Cidr> Cidr::parse(std::string_view text) {
  auto slash = text.find('/');
  auto ip = IpAddress::parse(text.substr(0, slash));
  if (!ip) {
    return std::nullopt;
  }
  if (slash == std::string_view::npos) {
    return make(*ip, ip->isV4() ? 32 : 128);
  }
  auto len = parseUnsigned(text.substr(slash + 1), 128);
  if (!len) {
    return std::nullopt;
  }
  return make(*ip, static_cast<uint8_t>(*len));
}

bool Cidr::contains(const IpAddress& ip) const {
  if (ip.family() != base_.family()) {
    return false;
  }
  auto a = ip.bytes();
  auto b = base_.bytes();
  size_t full = prefixLength_ / 8;
  if (std::memcmp(a.data(), b.data(), full) != 0) {
    return false;
  }
  if (uint8_t rest = prefixLength_ % 8; rest != 0) {
    uint8_t mask = static_cast<uint8_t>(0xffu << (8 - rest));
    return (static_cast<uint8_t>(a[full]) & mask) == (static_cast<uint8_t>(b[full]) & mask);
  }
  return true;
}

std::string Cidr::toString() const {
  return base_.toString() + "/" + std::to_string(prefixLength_);
}

}  // namespace zt

size_t std::hash<zt::IpAddress>::operator()(const zt::IpAddress& ip) const noexcept {
  return std::hash<std::string_view>()(ip.bytes());
}

size_t std::hash<zt::SocketAddress>::operator()(const zt::SocketAddress& addr) const noexcept {
  return std::hash<zt::IpAddress>()(addr.ip()) * 31 + addr.port();
}
