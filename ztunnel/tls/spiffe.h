#pragma once

// SPIFFE workload identities in Istio's form: spiffe://<trust-domain>/ns/<namespace>/sa/<account>.
//
// Parsing is strict (it guards the mesh's authentication): exactly the four path segments
// "ns", <ns>, "sa", <sa>; the character sets of the SPIFFE ID specification (trust domain: a-z 0-9
// . - _; path segments: A-Z a-z 0-9 . - _, never "." or ".."); no port, userinfo, query, fragment,
// percent-encoding or empty segment; at most 2048 bytes in total and 255 for the trust domain.
//
// Thread: values; safe to share read-only.

#include <cstddef>
#include <functional>
#include <string>
#include <string_view>

#include "ztunnel/core/result.h"
#include "ztunnel/tls/tls_error.h"

namespace zt::tls {

struct Identity {
  static constexpr size_t kMaxUriLength = 2048;
  static constexpr size_t kMaxTrustDomainLength = 255;

  std::string trustDomain;
  std::string ns;
  std::string serviceAccount;

  // Strictly parses a SPIFFE URI; errors are TlsErrc::kInvalidSpiffeId naming the problem.
  static Result<Identity> parse(std::string_view uri);

  // Assembles an identity from parts without validation (see valid()).
  static Identity make(std::string_view trustDomain, std::string_view ns,
                       std::string_view serviceAccount);

  // True if the parts would form a URI that parse() accepts.
  bool valid() const;

  // "spiffe://<td>/ns/<ns>/sa/<sa>"
  std::string toUri() const;

  size_t hash() const noexcept;

  friend bool operator==(const Identity&, const Identity&) = default;
};

struct IdentityHash {
  size_t operator()(const Identity& id) const noexcept { return id.hash(); }
};

}  // namespace zt::tls

template <>
struct std::hash<zt::tls::Identity> {
  size_t operator()(const zt::tls::Identity& id) const noexcept { return id.hash(); }
};
