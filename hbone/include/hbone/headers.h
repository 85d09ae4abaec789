#pragma once

// Codecs for the HBONE request headers (ztunnel-compat.md §2.3): baggage, forwarded, traceparent.
// Pure functions over strings; thread-safe except TraceContext::random(), which uses a
// thread-local generator (safe from any thread, not shared).

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "hbone/error.h"
#include "ztunnel/core/result.h"
#include "ztunnel/core/sockaddr.h"

namespace hbone {

// W3C baggage with ztunnel's keys. Empty field = absent.
struct Baggage {
  std::string clusterId;       // k8s.cluster.name
  std::string namespaceName;   // k8s.namespace.name
  std::string workloadType;    // <type> of k8s.<type>.name: deployment|cronjob|pod|job
  std::string workloadName;    // k8s.<type>.name
  std::string serviceName;     // service.name (canonical name)
  std::string serviceVersion;  // service.version (canonical revision)
  std::string region;          // cloud.region
  std::string zone;            // cloud.availability_zone

  friend bool operator==(const Baggage&, const Baggage&) = default;
};

// "k8s.cluster.name=c1,k8s.namespace.name=ns,k8s.deployment.name=w,..." with the non-empty fields
// in ztunnel's order. An empty workloadType with a workloadName encodes as "deployment" (the
// proto's default WorkloadType); workloadType is lowercased. Bytes outside the W3C baggage-octet
// set (and '%') are percent-encoded, so any value round-trips through decodeBaggage().
std::string encodeBaggage(const Baggage& baggage);

// Parses a baggage header value (several headers may be joined with ','). Members are
// `key=value[;properties]` with optional whitespace around members, keys and values; properties
// are ignored; unknown keys are ignored; a repeated key: the last wins. Values are
// percent-decoded. Rejects (kInvalidHeader): more than 8192 bytes, a member without '=' or with
// an empty key, a key that is not a token, a value with bytes outside baggage-octet, a malformed
// percent escape. An empty string decodes to an empty Baggage. The header is telemetry: a caller
// that gets an error should treat the header as absent, not refuse the tunnel.
zt::Result<Baggage> decodeBaggage(std::string_view header);

// RFC 7239 Forwarded, as ztunnel uses it: `for="<client ip:port>"` plus `;host=<service host>`.
struct Forwarded {
  std::optional<zt::SocketAddress> forAddress;  // nullopt if absent, "unknown" or obfuscated
  std::string host;                             // empty if absent
  friend bool operator==(const Forwarded&, const Forwarded&) = default;
};

// for="1.2.3.4:80" / for="[fd00::1]:80", then ;host=<host> when host is non-empty (quoted when it
// is not a token).
std::string buildForwarded(const zt::SocketAddress& client, std::string_view host = {});

// Parses the first forwarded-element (pairs before the first ','). Pair names are
// case-insensitive; values are tokens or quoted strings (with \-escapes). Rejects (kInvalidHeader)
// syntax errors, a repeated parameter, a non-printable byte. Unknown parameters (by, proto, ...)
// are ignored; a `for` value that is not an IP (with or without port) yields no forAddress.
// The receiver uses only `host` (ztunnel-compat.md §2.3).
zt::Result<Forwarded> parseForwarded(std::string_view header);

// W3C trace context `traceparent`: 00-<32 hex trace id>-<16 hex parent id>-<2 hex flags>.
struct TraceContext {
  std::array<uint8_t, 16> traceId{};
  std::array<uint8_t, 8> parentId{};
  uint8_t flags = 0;

  // Random non-zero ids and flags 00, as ztunnel does per outbound connection.
  static TraceContext random();
  // Lowercase hex, version 00.
  std::string toString() const;
  // Validates per W3C: lowercase hex only; version "ff" invalid; version 00 is exactly 55 chars;
  // a later version may carry more fields after a '-'; all-zero trace id or parent id invalid.
  static zt::Result<TraceContext> parse(std::string_view header);

  friend bool operator==(const TraceContext&, const TraceContext&) = default;
};

// TraceContext::random().toString().
std::string generateTraceparent();

}  // namespace hbone
