#pragma once

// The HBONE CONNECT request (ztunnel-compat.md §2.3/§2.4): the :authority value type, the request
// the client sends and the server-side validator that turns received header fields into a request
// or a 400.
//
// Pure values and functions; no I/O, no threads. Safe to use from any thread.

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "hbone/error.h"
#include "ztunnel/core/result.h"
#include "ztunnel/core/sockaddr.h"

namespace hbone {

// The CONNECT target: either an IP socket address ("10.0.0.1:8080", "[fd00::1]:8080") or a host
// name with a port ("reviews.default.svc.cluster.local:9080", double HBONE and waypoints).
//
// parse() is strict: port is 1-65535 in decimal without sign or leading zeros; IPv6 must be
// bracketed; a bracketed literal must be IPv6 (no zone); a host name is 1-253 characters of
// dot-separated labels (1-63 of [A-Za-z0-9_-], not starting or ending with '-', optional
// trailing dot rejected) whose last label is not all digits (so "1.2.3:80" is not a host name).
// Host names keep the case they were sent with.
class Authority {
 public:
  Authority() = default;
  static Authority ofAddress(const zt::SocketAddress& address);
  // Validates `host` with the same rules as parse(); port must be non-zero.
  static zt::Result<Authority> ofHost(std::string_view host, uint16_t port);
  static zt::Result<Authority> parse(std::string_view text);

  bool isAddress() const { return address_.has_value(); }
  // The IP socket address; nullopt for host-name authorities.
  const std::optional<zt::SocketAddress>& address() const { return address_; }
  // The host name; empty for address authorities.
  const std::string& host() const { return host_; }
  uint16_t port() const { return address_ ? address_->port() : port_; }

  // "ip:port", "[v6]:port" or "host:port"; parse(toString()) gives back an equal value.
  std::string toString() const;

  friend bool operator==(const Authority&, const Authority&) = default;

 private:
  std::optional<zt::SocketAddress> address_;
  std::string host_;
  uint16_t port_ = 0;
};

struct HeaderField {
  std::string name;
  std::string value;
  friend bool operator==(const HeaderField&, const HeaderField&) = default;
};

// What an HBONE client asks for and what a server accepted. Header values are carried raw; decode
// them with hbone/headers.h. Empty baggage/forwarded/traceparent means the header was absent.
struct ConnectRequest {
  Authority authority;
  std::string baggage;      // "baggage" (W3C baggage of the source workload)
  std::string forwarded;    // "forwarded" (RFC 7239: for="ip:port"[;host=svc])
  std::string traceparent;  // "traceparent" (W3C, random per tunnel)
  // "x-forwarded-network": only on the inner CONNECT of double HBONE.
  std::optional<std::string> forwardedNetwork;

  // The request header list, in the order the client sends it: :method, :authority, then the
  // non-empty headers above. (Classic CONNECT: no :scheme, no :path.)
  std::vector<HeaderField> toHeaders() const;

  friend bool operator==(const ConnectRequest&, const ConnectRequest&) = default;
};

// Server-side validation of a received request header block (ztunnel-compat.md §2.4 step 3).
// Feed every field in wire order with add(), then call finish(). Rejections (all answered with
// 400 by the server session): a field name that is not a valid lowercase HTTP/2 name, a value with
// NUL/CR/LF or leading/trailing whitespace, a pseudo-header after a regular one, an unknown or
// repeated pseudo-header, a connection-specific header, :method other than CONNECT, :scheme,
// :path or :protocol present (only classic CONNECT), :authority missing or not a valid Authority.
// Repeated baggage/forwarded headers are joined with ", "; for traceparent and
// x-forwarded-network the first one wins. Other headers are ignored.
class ConnectRequestParser {
 public:
  // Never fails; the first problem is remembered and reported by finish().
  void add(std::string_view name, std::string_view value);
  // The request, or HboneErrc::kBadRequest (or kInvalidAuthority) naming the first problem.
  zt::Result<ConnectRequest> finish() &&;

 private:
  void reject(std::string reason);

  ConnectRequest request_;
  std::optional<std::string> error_;
  std::string method_;
  std::string authority_;
  bool sawMethod_ = false;
  bool sawAuthority_ = false;
  bool sawRegular_ = false;
  bool sawTraceparent_ = false;
};

}  // namespace hbone
