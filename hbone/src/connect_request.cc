#include "hbone/connect_request.h"

#include <nghttp2/nghttp2.h>

#include <algorithm>
#include <array>

namespace hbone {
namespace {

bool isDigit(char c) {
  return c >= '0' && c <= '9';
}
bool isAlpha(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

// Strict decimal port: 1-65535, no sign, no leading zero.
std::optional<uint16_t> parsePort(std::string_view text) {
  if (text.empty() || text.size() > 5 || text[0] == '0') {
    return std::nullopt;
  }
  uint32_t value = 0;
  for (char c : text) {
    if (!isDigit(c)) {
      return std::nullopt;
    }
    value = value * 10 + static_cast<uint32_t>(c - '0');
  }
  if (value == 0 || value > 65535) {
    return std::nullopt;
  }
  return static_cast<uint16_t>(value);
}

bool validHostName(std::string_view host) {
  if (host.empty() || host.size() > 253) {
    return false;
  }
  size_t start = 0;
  bool lastLabelAllDigits = false;
  while (start <= host.size()) {
    size_t dot = host.find('.', start);
    if (dot == std::string_view::npos) {
      dot = host.size();
    }
    std::string_view label = host.substr(start, dot - start);
    if (label.empty() || label.size() > 63 || label.front() == '-' || label.back() == '-') {
      return false;  // also rejects "a..b", a leading or a trailing dot
    }
    bool allDigits = true;
    for (char c : label) {
      if (!isAlpha(c) && !isDigit(c) && c != '-' && c != '_') {
        return false;
      }
      allDigits = allDigits && isDigit(c);
    }
    lastLabelAllDigits = allDigits;
    start = dot + 1;
    if (dot == host.size()) {
      break;
    }
  }
  // "1.2.3" or "300.1.1.1" look like (bad) IPv4 literals, not host names.
  return !lastLabelAllDigits;
}

bool validFieldName(std::string_view name) {
  return nghttp2_check_header_name(reinterpret_cast<const uint8_t*>(name.data()), name.size()) != 0;
}

bool validFieldValue(std::string_view value) {
  return nghttp2_check_header_value_rfc9113(reinterpret_cast<const uint8_t*>(value.data()),
                                            value.size()) != 0;
}

// RFC 9113 §8.2.2: these make a request malformed ("te" is allowed only as "trailers").
bool connectionSpecific(std::string_view name, std::string_view value) {
  static constexpr std::array<std::string_view, 5> kNames = {
      "connection", "keep-alive", "proxy-connection", "transfer-encoding", "upgrade"};
  if (std::find(kNames.begin(), kNames.end(), name) != kNames.end()) {
    return true;
  }
  return name == "te" && value != "trailers";
}

}  // namespace

Authority Authority::ofAddress(const zt::SocketAddress& address) {
  Authority a;
  a.address_ = address;
  return a;
}

zt::Result<Authority> Authority::ofHost(std::string_view host, uint16_t port) {
  if (port == 0) {
    return zt::fail(HboneErrc::kInvalidAuthority, "port 0");
  }
  if (!validHostName(host)) {
    return zt::fail(HboneErrc::kInvalidAuthority, "invalid host name");
  }
  Authority a;
  a.host_ = std::string(host);
  a.port_ = port;
  return a;
}

zt::Result<Authority> Authority::parse(std::string_view text) {
  if (text.empty() || text.size() > 260) {
    return zt::fail(HboneErrc::kInvalidAuthority, "empty or too long");
  }
  if (text.front() == '[') {
    size_t close = text.find(']');
    if (close == std::string_view::npos || close + 1 >= text.size() || text[close + 1] != ':') {
      return zt::fail(HboneErrc::kInvalidAuthority, "bad bracketed address");
    }
    std::string_view literal = text.substr(1, close - 1);
    auto port = parsePort(text.substr(close + 2));
    // IpAddress::parse accepts no zone ("%eth0"); the ':' check keeps "[1.2.3.4]" out.
    auto ip = zt::IpAddress::parse(literal);
    if (!port || !ip || literal.find(':') == std::string_view::npos) {
      return zt::fail(HboneErrc::kInvalidAuthority, "bad IPv6 address or port");
    }
    return ofAddress(zt::SocketAddress(*ip, *port));
  }
  size_t colon = text.rfind(':');
  if (colon == std::string_view::npos) {
    return zt::fail(HboneErrc::kInvalidAuthority, "missing port");
  }
  std::string_view host = text.substr(0, colon);
  auto port = parsePort(text.substr(colon + 1));
  if (!port) {
    return zt::fail(HboneErrc::kInvalidAuthority, "bad port");
  }
  if (host.find(':') != std::string_view::npos) {
    return zt::fail(HboneErrc::kInvalidAuthority, "IPv6 address must be bracketed");
  }
  bool dottedDigits = !host.empty() && std::all_of(host.begin(), host.end(),
                                                   [](char c) { return isDigit(c) || c == '.'; });
  if (dottedDigits) {
    auto ip = zt::IpAddress::parse(host);
    if (!ip || !ip->isV4()) {
      return zt::fail(HboneErrc::kInvalidAuthority, "bad IPv4 address");
    }
    return ofAddress(zt::SocketAddress(*ip, *port));
  }
  return ofHost(host, *port);
}

std::string Authority::toString() const {
  if (address_) {
    return address_->toString();
  }
  return host_ + ":" + std::to_string(port_);
}

std::vector<HeaderField> ConnectRequest::toHeaders() const {
  std::vector<HeaderField> headers;
  headers.reserve(6);
  headers.push_back({":method", "CONNECT"});
  headers.push_back({":authority", authority.toString()});
  if (!baggage.empty()) {
    headers.push_back({"baggage", baggage});
  }
  if (!forwarded.empty()) {
    headers.push_back({"forwarded", forwarded});
  }
  if (!traceparent.empty()) {
    headers.push_back({"traceparent", traceparent});
  }
  if (forwardedNetwork) {
    headers.push_back({"x-forwarded-network", *forwardedNetwork});
  }
  return headers;
}

void ConnectRequestParser::reject(std::string reason) {
  if (!error_) {
    error_ = std::move(reason);
  }
}

void ConnectRequestParser::add(std::string_view name, std::string_view value) {
  if (error_) {
    return;
  }
  if (!name.empty() && name.front() == ':') {
    if (sawRegular_) {
      return reject("pseudo-header after a regular header");
    }
    if (!validFieldValue(value)) {
      return reject("invalid pseudo-header value");
    }
    if (name == ":method") {
      if (sawMethod_) {
        return reject("repeated :method");
      }
      sawMethod_ = true;
      method_ = std::string(value);
    } else if (name == ":authority") {
      if (sawAuthority_) {
        return reject("repeated :authority");
      }
      sawAuthority_ = true;
      authority_ = std::string(value);
    } else if (name == ":scheme" || name == ":path" || name == ":protocol") {
      return reject(std::string(name) + " present: only classic CONNECT is accepted");
    } else {
      return reject("unknown pseudo-header");
    }
    return;
  }
  sawRegular_ = true;
  if (!validFieldName(name)) {
    return reject("invalid header name");
  }
  if (!validFieldValue(value)) {
    return reject("invalid header value");
  }
  if (connectionSpecific(name, value)) {
    return reject("connection-specific header");
  }
  auto join = [](std::string& into, std::string_view more) {
    if (more.empty()) {
      return;  // an empty field line adds nothing to the combined value
    }
    if (!into.empty()) {
      into += ", ";
    }
    into += more;
  };
  if (name == "baggage") {
    join(request_.baggage, value);
  } else if (name == "forwarded") {
    join(request_.forwarded, value);
  } else if (name == "traceparent") {
    if (!sawTraceparent_) {
      sawTraceparent_ = true;
      request_.traceparent = std::string(value);
    }
  } else if (name == "x-forwarded-network") {
    if (!request_.forwardedNetwork) {
      request_.forwardedNetwork = std::string(value);
    }
  }
}

zt::Result<ConnectRequest> ConnectRequestParser::finish() && {
  if (error_) {
    return zt::fail(HboneErrc::kBadRequest, std::move(*error_));
  }
  if (!sawMethod_) {
    return zt::fail(HboneErrc::kBadRequest, "missing :method");
  }
  if (method_ != "CONNECT") {
    return zt::fail(HboneErrc::kBadRequest, "method is not CONNECT");
  }
  if (!sawAuthority_) {
    return zt::fail(HboneErrc::kBadRequest, "missing :authority");
  }
  auto authority = Authority::parse(authority_);
  if (!authority) {
    return zt::fail(std::move(authority).error());
  }
  request_.authority = std::move(*authority);
  return std::move(request_);
}

}  // namespace hbone
