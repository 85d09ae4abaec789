#include "hbone/headers.h"
#include "ztunnel/core/hex.h"

#include <algorithm>
#include <random>

namespace hbone {
namespace {

constexpr size_t kMaxBaggageBytes = 8192;  // W3C baggage: at most 8192 bytes in total

bool isOws(char c) {
  return c == ' ' || c == '\t';
}

std::string_view trimOws(std::string_view s) {
  while (!s.empty() && isOws(s.front())) {
    s.remove_prefix(1);
  }
  while (!s.empty() && isOws(s.back())) {
    s.remove_suffix(1);
  }
  return s;
}

// RFC 9110 tchar.
bool isTchar(char c) {
  if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')) {
    return true;
  }
  switch (c) {
    case '!':
    case '#':
    case '$':
    case '%':
    case '&':
    case '\'':
    case '*':
    case '+':
    case '-':
    case '.':
    case '^':
    case '_':
    case '`':
    case '|':
    case '~':
      return true;
    default:
      return false;
  }
}

bool isToken(std::string_view s) {
  return !s.empty() && std::all_of(s.begin(), s.end(), isTchar);
}

// W3C baggage-octet: %x21 / %x23-2B / %x2D-3A / %x3C-5B / %x5D-7E.
bool isBaggageOctet(unsigned char c) {
  return c == 0x21 || (c >= 0x23 && c <= 0x2B) || (c >= 0x2D && c <= 0x3A) ||
         (c >= 0x3C && c <= 0x5B) || (c >= 0x5D && c <= 0x7E);
}

void percentEncodeInto(std::string& out, std::string_view value) {
  for (char ch : value) {
    auto c = static_cast<unsigned char>(ch);
    if (isBaggageOctet(c) && c != '%') {
      out += ch;
    } else {
      out += '%';
      out += zt::kLowerHexDigits[c >> 4];
      out += zt::kLowerHexDigits[c & 0xf];
    }
  }
}

std::optional<std::string> percentDecode(std::string_view value) {
  std::string out;
  out.reserve(value.size());
  for (size_t i = 0; i < value.size(); ++i) {
    auto c = static_cast<unsigned char>(value[i]);
    if (!isBaggageOctet(c)) {
      return std::nullopt;
    }
    if (c != '%') {
      out += static_cast<char>(c);
      continue;
    }
    if (i + 2 >= value.size()) {
      return std::nullopt;
    }
    int hi = zt::hexDigitValue(value[i + 1]);
    int lo = zt::hexDigitValue(value[i + 2]);
    if (hi < 0 || lo < 0) {
      return std::nullopt;
    }
    out += static_cast<char>((hi << 4) | lo);
    i += 2;
  }
  return out;
}

constexpr std::array<std::string_view, 4> kWorkloadTypes = {"deployment", "cronjob", "pod", "job"};

std::string lowercase(std::string_view s) {
  std::string out(s);
  for (auto& c : out) {
    if (c >= 'A' && c <= 'Z') {
      c = static_cast<char>(c - 'A' + 'a');
    }
  }
  return out;
}

}  // namespace

std::string encodeBaggage(const Baggage& b) {
  std::string out;
  auto member = [&out](std::string_view key, std::string_view value) {
    if (value.empty()) {
      return;
    }
    if (!out.empty()) {
      out += ',';
    }
    out += key;
    out += '=';
    percentEncodeInto(out, value);
  };
  member("k8s.cluster.name", b.clusterId);
  member("k8s.namespace.name", b.namespaceName);
  if (!b.workloadName.empty()) {
    std::string type = lowercase(b.workloadType);
    if (std::find(kWorkloadTypes.begin(), kWorkloadTypes.end(), type) == kWorkloadTypes.end()) {
      type = "deployment";
    }
    member("k8s." + type + ".name", b.workloadName);
  }
  member("service.name", b.serviceName);
  member("service.version", b.serviceVersion);
  member("cloud.region", b.region);
  member("cloud.availability_zone", b.zone);
  return out;
}

zt::Result<Baggage> decodeBaggage(std::string_view header) {
  if (header.size() > kMaxBaggageBytes) {
    return zt::fail(HboneErrc::kInvalidHeader, "baggage longer than 8192 bytes");
  }
  Baggage b;
  while (!header.empty()) {
    size_t comma = header.find(',');
    std::string_view member = header.substr(0, comma);
    header = comma == std::string_view::npos ? std::string_view{} : header.substr(comma + 1);
    // Properties (";k=v") are not used by ztunnel.
    member = trimOws(member.substr(0, member.find(';')));
    if (member.empty()) {
      continue;  // tolerate ",," and a trailing comma
    }
    size_t eq = member.find('=');
    if (eq == std::string_view::npos) {
      return zt::fail(HboneErrc::kInvalidHeader, "baggage member without '='");
    }
    std::string_view key = trimOws(member.substr(0, eq));
    if (!isToken(key)) {
      return zt::fail(HboneErrc::kInvalidHeader, "baggage key is not a token");
    }
    auto value = percentDecode(trimOws(member.substr(eq + 1)));
    if (!value) {
      return zt::fail(HboneErrc::kInvalidHeader, "bad baggage value");
    }
    if (key == "k8s.cluster.name") {
      b.clusterId = std::move(*value);
    } else if (key == "k8s.namespace.name") {
      b.namespaceName = std::move(*value);
    } else if (key == "service.name") {
      b.serviceName = std::move(*value);
    } else if (key == "service.version") {
      b.serviceVersion = std::move(*value);
    } else if (key == "cloud.region") {
      b.region = std::move(*value);
    } else if (key == "cloud.availability_zone") {
      b.zone = std::move(*value);
    } else if (key.size() > 9 && key.starts_with("k8s.") && key.ends_with(".name")) {
      std::string_view type = key.substr(4, key.size() - 9);
      if (std::find(kWorkloadTypes.begin(), kWorkloadTypes.end(), type) != kWorkloadTypes.end()) {
        // An empty value means absent (as in ztunnel), type included.
        b.workloadType = value->empty() ? std::string() : std::string(type);
        b.workloadName = std::move(*value);
      }
    }
  }
  return b;
}

std::string buildForwarded(const zt::SocketAddress& client, std::string_view host) {
  std::string out = "for=\"" + client.toString() + "\"";
  if (!host.empty()) {
    out += ";host=";
    if (isToken(host)) {
      out += host;
    } else {
      out += '"';
      for (char c : host) {
        if (c == '"' || c == '\\') {
          out += '\\';
        }
        out += c;
      }
      out += '"';
    }
  }
  return out;
}

zt::Result<Forwarded> parseForwarded(std::string_view header) {
  Forwarded result;
  bool sawFor = false;
  bool sawHost = false;
  size_t i = 0;
  auto bad = [](std::string detail) {
    return zt::fail(HboneErrc::kInvalidHeader, std::move(detail));
  };
  auto skipOws = [&] {
    while (i < header.size() && isOws(header[i])) {
      ++i;
    }
  };
  while (true) {
    skipOws();
    if (i >= header.size() || header[i] == ',') {
      break;  // end of the first forwarded-element
    }
    if (header[i] == ';') {
      ++i;  // empty pair
      continue;
    }
    size_t nameStart = i;
    while (i < header.size() && isTchar(header[i])) {
      ++i;
    }
    std::string name = lowercase(header.substr(nameStart, i - nameStart));
    if (name.empty() || i >= header.size() || header[i] != '=') {
      return bad("forwarded pair without token=value");
    }
    ++i;
    std::string value;
    if (i < header.size() && header[i] == '"') {
      ++i;
      bool closed = false;
      while (i < header.size()) {
        auto c = static_cast<unsigned char>(header[i]);
        if (c == '"') {
          closed = true;
          ++i;
          break;
        }
        if (c == '\\') {
          if (i + 1 >= header.size()) {
            break;
          }
          c = static_cast<unsigned char>(header[++i]);
        }
        if ((c < 0x20 && c != '\t') || c == 0x7f) {
          return bad("control character in forwarded value");
        }
        value += static_cast<char>(c);
        ++i;
      }
      if (!closed) {
        return bad("unterminated quoted string in forwarded");
      }
    } else {
      size_t valueStart = i;
      while (i < header.size() && isTchar(header[i])) {
        ++i;
      }
      value = std::string(header.substr(valueStart, i - valueStart));
      if (value.empty()) {
        return bad("empty forwarded value");
      }
    }
    skipOws();
    if (i < header.size() && header[i] != ';' && header[i] != ',') {
      return bad("garbage after forwarded value");
    }
    if (name == "for") {
      if (sawFor) {
        return bad("repeated forwarded 'for'");
      }
      sawFor = true;
      if (auto sa = zt::SocketAddress::parse(value)) {
        result.forAddress = *sa;
      } else if (auto ip = zt::IpAddress::parse(value); ip && ip->isV4()) {
        result.forAddress = zt::SocketAddress(*ip, 0);
      } else if (value.size() > 2 && value.front() == '[' && value.back() == ']') {
        if (auto ip6 = zt::IpAddress::parse(std::string_view(value).substr(1, value.size() - 2))) {
          result.forAddress = zt::SocketAddress(*ip6, 0);
        }
      }
    } else if (name == "host") {
      if (sawHost) {
        return bad("repeated forwarded 'host'");
      }
      sawHost = true;
      result.host = std::move(value);
    }
  }
  return result;
}

TraceContext TraceContext::random() {
  thread_local std::mt19937_64 rng = [] {
    std::random_device rd;
    std::seed_seq seq{rd(), rd(), rd(), rd()};
    return std::mt19937_64(seq);
  }();
  TraceContext tc;
  auto fill = [](auto& bytes) {
    bool zero = true;
    while (zero) {
      for (size_t i = 0; i < bytes.size(); i += 8) {
        uint64_t r = rng();
        for (size_t j = 0; j < 8 && i + j < bytes.size(); ++j) {
          bytes[i + j] = static_cast<uint8_t>(r >> (8 * j));
        }
      }
      zero = std::all_of(bytes.begin(), bytes.end(), [](uint8_t b) { return b == 0; });
    }
  };
  fill(tc.traceId);
  fill(tc.parentId);
  tc.flags = 0;
  return tc;
}

std::string TraceContext::toString() const {
  std::string out;
  out.reserve(55);
  auto hex = [&out](uint8_t b) {
    out += zt::kLowerHexDigits[b >> 4];
    out += zt::kLowerHexDigits[b & 0xf];
  };
  out += "00-";
  for (uint8_t b : traceId) {
    hex(b);
  }
  out += '-';
  for (uint8_t b : parentId) {
    hex(b);
  }
  out += '-';
  hex(flags);
  return out;
}

zt::Result<TraceContext> TraceContext::parse(std::string_view h) {
  auto bad = [](const char* detail) { return zt::fail(HboneErrc::kInvalidHeader, detail); };
  // Lowercase hex only (W3C: uppercase is invalid).
  auto lowerHex = [](char c) { return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'); };
  auto readHex = [&](size_t pos, size_t n, uint8_t* out) {
    for (size_t i = 0; i < n; ++i) {
      char hi = h[pos + 2 * i];
      char lo = h[pos + 2 * i + 1];
      if (!lowerHex(hi) || !lowerHex(lo)) {
        return false;
      }
      out[i] = static_cast<uint8_t>((zt::hexDigitValue(hi) << 4) | zt::hexDigitValue(lo));
    }
    return true;
  };
  if (h.size() < 55) {
    return bad("traceparent too short");
  }
  uint8_t version = 0;
  if (!readHex(0, 1, &version) || version == 0xff) {
    return bad("bad traceparent version");
  }
  if (h[2] != '-' || h[35] != '-' || h[52] != '-') {
    return bad("bad traceparent separators");
  }
  if (version == 0 ? h.size() != 55 : (h.size() > 55 && h[55] != '-')) {
    return bad("bad traceparent length");
  }
  TraceContext tc;
  if (!readHex(3, 16, tc.traceId.data()) || !readHex(36, 8, tc.parentId.data()) ||
      !readHex(53, 1, &tc.flags)) {
    return bad("bad traceparent hex");
  }
  auto allZero = [](const auto& a) {
    return std::all_of(a.begin(), a.end(), [](uint8_t b) { return b == 0; });
  };
  if (allZero(tc.traceId) || allZero(tc.parentId)) {
    return bad("all-zero traceparent id");
  }
  return tc;
}

std::string generateTraceparent() {
  return TraceContext::random().toString();
}

}  // namespace hbone
