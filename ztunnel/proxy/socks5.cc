#include "ztunnel/proxy/socks5.h"

#include <cerrno>
#include <cstring>

namespace zt::proxy::socks5 {

namespace {
constexpr uint8_t kVersion = 5;
constexpr uint8_t kMethodNoAuth = 0x00;
constexpr uint8_t kMethodNoneAcceptable = 0xff;
constexpr uint8_t kCmdConnect = 0x01;
constexpr uint8_t kAtypV4 = 0x01;
constexpr uint8_t kAtypDomain = 0x03;
constexpr uint8_t kAtypV6 = 0x04;

std::string_view describe(int code) noexcept {
  switch (static_cast<Socks5Errc>(code)) {
    case Socks5Errc::kBadVersion:
      return "not a SOCKS5 client";
    case Socks5Errc::kNoAcceptableAuth:
      return "client offers no 'no authentication' method";
    case Socks5Errc::kUnsupportedCommand:
      return "only CONNECT is supported";
    case Socks5Errc::kUnsupportedAddressType:
      return "unsupported address type";
    case Socks5Errc::kMalformed:
      return "malformed request";
  }
  return "unknown socks5 error";
}

uint16_t readPort(const uint8_t* p) {
  return static_cast<uint16_t>((p[0] << 8) | p[1]);
}
}  // namespace

const ErrorCategory& errorCategory(Socks5Errc) noexcept {
  static constexpr ErrorCategory kCategory{"socks5", &describe};
  return kCategory;
}

Result<ServerHandshake::Step> ServerHandshake::feed(std::span<const uint8_t> in) {
  Step step;
  if (stage_ == Stage::kGreeting) {
    if (in.size() < 2) {
      return step;
    }
    if (in[0] != kVersion) {
      return fail(Socks5Errc::kBadVersion);
    }
    size_t need = 2 + static_cast<size_t>(in[1]);
    if (in.size() < need) {
      return step;
    }
    bool noAuth = false;
    for (size_t i = 2; i < need; ++i) {
      noAuth = noAuth || in[i] == kMethodNoAuth;
    }
    if (!noAuth) {
      return fail(Socks5Errc::kNoAcceptableAuth);
    }
    step.reply = std::string{static_cast<char>(kVersion), static_cast<char>(kMethodNoAuth)};
    step.consumed = need;
    stage_ = Stage::kRequest;
    in = in.subspan(need);
  }
  if (stage_ == Stage::kRequest) {
    // VER CMD RSV ATYP DST.ADDR DST.PORT; reject as early as the header allows.
    if (in.size() < 4) {
      return step;
    }
    if (in[0] != kVersion) {
      return fail(Socks5Errc::kBadVersion);
    }
    if (in[1] != kCmdConnect) {
      return fail(Socks5Errc::kUnsupportedCommand);
    }
    if (in[2] != 0) {
      return fail(Socks5Errc::kMalformed, "reserved byte not zero");
    }
    size_t need = 0;
    switch (in[3]) {
      case kAtypV4:
        need = 4 + 4 + 2;
        break;
      case kAtypV6:
        need = 4 + 16 + 2;
        break;
      case kAtypDomain:
        if (in.size() < 5) {
          return step;
        }
        need = 4 + 1 + static_cast<size_t>(in[4]) + 2;
        if (in[4] == 0) {
          return fail(Socks5Errc::kMalformed, "empty domain name");
        }
        break;
      default:
        return fail(Socks5Errc::kUnsupportedAddressType);
    }
    if (in.size() < need) {
      return step;
    }
    if (in[3] == kAtypV4) {
      in_addr a;
      std::memcpy(&a, in.data() + 4, 4);
      step.target = SocketAddress(IpAddress::v4(a), readPort(in.data() + 8));
    } else if (in[3] == kAtypV6) {
      in6_addr a;
      std::memcpy(&a, in.data() + 4, 16);
      step.target = SocketAddress(IpAddress::v6(a), readPort(in.data() + 20));
    } else {
      size_t len = in[4];
      std::string host(reinterpret_cast<const char*>(in.data() + 5), len);
      for (char c : host) {
        if (static_cast<unsigned char>(c) <= 0x20 || static_cast<unsigned char>(c) >= 0x7f) {
          return fail(Socks5Errc::kMalformed, "domain name has a control or non-ASCII byte");
        }
      }
      uint16_t port = readPort(in.data() + 5 + len);
      // A literal address sent as a "domain" is treated as that address.
      if (auto ip = IpAddress::parse(host)) {
        step.target = SocketAddress(*ip, port);
      } else {
        step.target = DomainTarget{std::move(host), port};
      }
    }
    step.consumed += need;
    stage_ = Stage::kDone;
  }
  return step;
}

std::string ServerHandshake::errorReply(const Error& error) {
  if (error.is(Socks5Errc::kNoAcceptableAuth)) {
    return std::string{static_cast<char>(kVersion), static_cast<char>(kMethodNoneAcceptable)};
  }
  if (error.is(Socks5Errc::kUnsupportedCommand)) {
    return connectReply(ReplyCode::kCommandNotSupported, std::nullopt);
  }
  if (error.is(Socks5Errc::kUnsupportedAddressType)) {
    return connectReply(ReplyCode::kAddressTypeNotSupported, std::nullopt);
  }
  if (error.is(Socks5Errc::kMalformed)) {
    return connectReply(ReplyCode::kGeneralFailure, std::nullopt);
  }
  return {};  // not a SOCKS5 peer: just close
}

ReplyCode replyForErrno(int err) {
  switch (err) {
    case ECONNREFUSED:
      return ReplyCode::kConnectionRefused;
    case ENETUNREACH:
    case ENETDOWN:
      return ReplyCode::kNetworkUnreachable;
    case EHOSTUNREACH:
    case EHOSTDOWN:
      return ReplyCode::kHostUnreachable;
    case ETIMEDOUT:
      return ReplyCode::kTtlExpired;
    case EACCES:
    case EPERM:
      return ReplyCode::kNotAllowed;
    default:
      return ReplyCode::kGeneralFailure;
  }
}

std::string connectReply(ReplyCode code, const std::optional<SocketAddress>& bound) {
  std::string out{static_cast<char>(kVersion), static_cast<char>(code), 0};
  SocketAddress addr = bound.value_or(SocketAddress(IpAddress::v4(0u), 0));
  if (addr.ip().isV4()) {
    out.push_back(static_cast<char>(kAtypV4));
  } else {
    out.push_back(static_cast<char>(kAtypV6));
  }
  out.append(addr.ip().bytes());
  out.push_back(static_cast<char>(addr.port() >> 8));
  out.push_back(static_cast<char>(addr.port() & 0xff));
  return out;
}

}  // namespace zt::proxy::socks5
