#include "ztunnel/tls/spiffe.h"

#include <array>

namespace zt::tls {

namespace {

constexpr std::string_view kScheme = "spiffe://";

constexpr bool isTrustDomainChar(char c) {
  return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' || c == '-' || c == '_';
}

constexpr bool isPathChar(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
         c == '-' || c == '_';
}

// Echoes (a bounded prefix of) hostile input in error details without control characters.
std::string quote(std::string_view s) {
  constexpr size_t kMaxEcho = 128;
  std::string out = "\"";
  for (size_t i = 0; i < s.size() && i < kMaxEcho; ++i) {
    char c = s[i];
    out += (c >= 0x20 && c < 0x7f) ? c : '?';
  }
  if (s.size() > kMaxEcho) {
    out += "...";
  }
  out += '"';
  return out;
}

tl::unexpected<Error> invalid(std::string_view uri, std::string_view why) {
  return fail(TlsErrc::kInvalidSpiffeId, std::string(why) + " in " + quote(uri));
}

// Empty string if `td` is a valid trust domain, else the reason.
std::string_view checkTrustDomain(std::string_view td) {
  if (td.empty()) {
    return "empty trust domain";
  }
  if (td.size() > Identity::kMaxTrustDomainLength) {
    return "trust domain longer than 255 bytes";
  }
  for (char c : td) {
    if (isTrustDomainChar(c)) {
      continue;
    }
    if (c == ':') {
      return "port in trust domain";
    }
    if (c == '@') {
      return "userinfo in trust domain";
    }
    if (c >= 'A' && c <= 'Z') {
      return "upper-case letter in trust domain";
    }
    if (c == '%') {
      return "percent-encoding in trust domain";
    }
    return "invalid character in trust domain";
  }
  return {};
}

std::string_view checkSegment(std::string_view seg) {
  if (seg.empty()) {
    return "empty path segment";
  }
  if (seg == "." || seg == "..") {
    return "dot segment in path";
  }
  for (char c : seg) {
    if (isPathChar(c)) {
      continue;
    }
    if (c == '?') {
      return "query in SPIFFE id";
    }
    if (c == '#') {
      return "fragment in SPIFFE id";
    }
    if (c == '%') {
      return "percent-encoding in path";
    }
    return "invalid character in path";
  }
  return {};
}

}  // namespace

Result<Identity> Identity::parse(std::string_view uri) {
  if (uri.size() > kMaxUriLength) {
    return fail(TlsErrc::kInvalidSpiffeId, "SPIFFE id longer than 2048 bytes");
  }
  if (!uri.starts_with(kScheme)) {
    return invalid(uri, "missing spiffe:// scheme");
  }
  std::string_view rest = uri.substr(kScheme.size());
  size_t slash = rest.find('/');
  std::string_view td = rest.substr(0, slash);
  if (auto why = checkTrustDomain(td); !why.empty()) {
    return invalid(uri, why);
  }
  if (slash == std::string_view::npos) {
    return invalid(uri, "no path");
  }
  // Path: exactly /ns/<ns>/sa/<sa>.
  std::string_view path = rest.substr(slash + 1);
  std::array<std::string_view, 4> segs;
  size_t count = 0;
  while (true) {
    size_t next = path.find('/');
    std::string_view seg = path.substr(0, next);
    if (count == segs.size()) {
      return invalid(uri, "more than 4 path segments");
    }
    if (auto why = checkSegment(seg); !why.empty()) {
      return invalid(uri, why);
    }
    segs[count++] = seg;
    if (next == std::string_view::npos) {
      break;
    }
    path = path.substr(next + 1);
  }
  if (count != segs.size()) {
    return invalid(uri, "path is not /ns/<namespace>/sa/<service-account>");
  }
  if (segs[0] != "ns" || segs[2] != "sa") {
    return invalid(uri, "path is not /ns/<namespace>/sa/<service-account>");
  }
  return Identity{std::string(td), std::string(segs[1]), std::string(segs[3])};
}

Identity Identity::make(std::string_view trustDomain, std::string_view ns,
                        std::string_view serviceAccount) {
  return Identity{std::string(trustDomain), std::string(ns), std::string(serviceAccount)};
}

bool Identity::valid() const {
  if (!checkTrustDomain(trustDomain).empty() || !checkSegment(ns).empty() ||
      !checkSegment(serviceAccount).empty()) {
    return false;
  }
  return kScheme.size() + trustDomain.size() + 4 + ns.size() + 4 + serviceAccount.size() <=
         kMaxUriLength;
}

std::string Identity::toUri() const {
  std::string out;
  out.reserve(kScheme.size() + trustDomain.size() + ns.size() + serviceAccount.size() + 8);
  out += kScheme;
  out += trustDomain;
  out += "/ns/";
  out += ns;
  out += "/sa/";
  out += serviceAccount;
  return out;
}

size_t Identity::hash() const noexcept {
  std::hash<std::string_view> h;
  size_t seed = h(trustDomain);
  // boost::hash_combine-style mixing of the three parts.
  seed ^= h(ns) + 0x9e3779b97f4a7c15ULL + (seed << 6) + (seed >> 2);
  seed ^= h(serviceAccount) + 0x9e3779b97f4a7c15ULL + (seed << 6) + (seed >> 2);
  return seed;
}

}  // namespace zt::tls
