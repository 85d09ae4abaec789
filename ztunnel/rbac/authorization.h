#pragma once

// L4 authorization (spec §4): decides whether a connection to a destination workload may proceed,
// from the source identity (peer certificate; absent for plaintext), source IP, and the
// post-resolution destination IP and port (the upstream pod IP and target port — not 15008, not
// the VIP or service port).
//
// Pure functions over an immutable ProxyState: no locks, no I/O, no logging (the caller logs the
// returned dry-run lines at DEBUG, or INFO with AUTHZ_POLICY_INFO_LOGGING). Safe on any thread.
// Called by the destination side before connecting upstream (inbound HBONE after CONNECT parsing,
// inbound plaintext after accept), and again by the connection manager when policies change.

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "ztunnel/core/sockaddr.h"
#include "ztunnel/state/policy.h"
#include "ztunnel/state/proxy_state.h"
#include "ztunnel/state/workload.h"

namespace zt::rbac {

// What is known about the connection being authorized.
struct ConnectionInfo {
  // The peer's SPIFFE identity (from its certificate); nullopt for plaintext (15006).
  std::optional<state::Identity> sourceIdentity;
  IpAddress sourceIp;
  IpAddress destinationIp;       // upstream workload IP
  uint16_t destinationPort = 0;  // upstream target port
};

struct Decision {
  enum class Reason : uint8_t {
    kNoAllowPolicies,   // allowed: no enforced ALLOW policy applies
    kAllowMatched,      // allowed: `policy` (an ALLOW) matched
    kExplicitlyDenied,  // denied: `policy` (a DENY) matched
    kNoAllowMatched,    // denied: ALLOW policies apply but none matched
  };

  bool allowed = true;
  Reason reason = Reason::kNoAllowPolicies;
  // The deciding policy for kAllowMatched / kExplicitlyDenied (points into the ProxyState the
  // decision was made on), else null.
  const state::Authorization* policy = nullptr;
  // One line per dry-run policy outcome, in evaluation order (§4.4 steps 1 and 3). Empty (and not
  // allocated) when no dry-run policy applies.
  std::vector<std::string> dryRunLog;

  // "explicitly denied by ns/name", "allow policies exist, but none allowed", "allowed by
  // ns/name", "no allow policies".
  std::string reasonText() const;
};

// Evaluates the policies that apply to `destination` in `state` (ProxyState::policiesFor) in the
// order of §4.4:
//  1. dry-run DENY policies: a log line for each that matches;
//  2. an enforced DENY that matches ⇒ deny (kExplicitlyDenied);
//  3. dry-run ALLOW policies: a log line for each that matches, or one saying none would;
//  4. no enforced ALLOW policy ⇒ allow (kNoAllowPolicies);
//  5. an enforced ALLOW that matches ⇒ allow (kAllowMatched), else deny (kNoAllowMatched).
Decision evaluate(const state::ProxyState& state, const state::Workload& destination,
                  const ConnectionInfo& connection);

// The same over an explicit policy list (tests, benchmarks, callers that cached the list).
Decision evaluate(std::span<const state::Authorization* const> policies,
                  const ConnectionInfo& connection);

// Whether one policy's rules match the connection (§4.1/§4.2), ignoring action and dry-run:
// rules OR-ed (zero rules never match), clauses AND-ed (a rule with zero clauses matches),
// matches OR-ed (zero matches ⇒ the clause is true; a Match with every field empty is skipped),
// field groups AND-ed (positive list empty or any positive value matches, and negative list
// empty or no negative value matches).
bool policyMatches(const state::Authorization& policy, const ConnectionInfo& connection);

}  // namespace zt::rbac
