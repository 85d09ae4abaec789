#include "ztunnel/rbac/authorization.h"

#include <algorithm>

namespace zt::rbac {

namespace {

using state::Authorization;
using state::Clause;
using state::Match;
using state::PolicyAction;
using state::Rule;
using state::ServiceAccountMatch;
using state::StringMatch;
using zt::Cidr;

// The connection attributes in the shape matching needs, computed once per evaluation.
struct Peer {
  const ConnectionInfo& conn;
  bool hasIdentity;
  std::string principal;  // identity without "spiffe://"; empty without identity
  std::string_view ns;    // namespace from the identity; empty without identity
  std::string_view sa;

  explicit Peer(const ConnectionInfo& c) : conn(c), hasIdentity(c.sourceIdentity.has_value()) {
    if (hasIdentity) {
      principal = c.sourceIdentity->toPrincipal();
      ns = c.sourceIdentity->namespace_;
      sa = c.sourceIdentity->serviceAccount;
    }
  }
};

template <class T, class Pred>
bool anyOf(const std::vector<T>& values, Pred pred) {
  return std::any_of(values.begin(), values.end(), pred);
}

// A field group: (positive empty or any positive matches) and (negative empty or none matches).
template <class T, class Pred>
bool group(const std::vector<T>& positive, const std::vector<T>& negative, Pred pred) {
  if (!positive.empty() && !anyOf(positive, pred)) {
    return false;
  }
  return negative.empty() || !anyOf(negative, pred);
}

bool matchHolds(const Match& m, const Peer& peer) {
  // Namespaces compare against the identity's namespace ("" without identity).
  if (!group(m.namespaces, m.notNamespaces,
             [&](const StringMatch& s) { return s.matches(peer.ns); })) {
    return false;
  }
  // Without an identity a principal never matches (so not_principals:[presence] matches
  // plaintext).
  if (!group(m.principals, m.notPrincipals,
             [&](const StringMatch& s) { return peer.hasIdentity && s.matches(peer.principal); })) {
    return false;
  }
  // Exact namespace + service account; the trust domain is ignored.
  if (!group(m.serviceAccounts, m.notServiceAccounts, [&](const ServiceAccountMatch& s) {
        return peer.hasIdentity && s.namespace_ == peer.ns && s.serviceAccount == peer.sa;
      })) {
    return false;
  }
  if (!group(m.sourceIps, m.notSourceIps,
             [&](const Cidr& c) { return c.contains(peer.conn.sourceIp); })) {
    return false;
  }
  if (!group(m.destinationIps, m.notDestinationIps,
             [&](const Cidr& c) { return c.contains(peer.conn.destinationIp); })) {
    return false;
  }
  return group(m.destinationPorts, m.notDestinationPorts,
               [&](uint32_t p) { return p == peer.conn.destinationPort; });
}

bool clauseHolds(const Clause& clause, const Peer& peer) {
  if (clause.matches.empty()) {
    return true;
  }
  for (const Match& m : clause.matches) {
    // An all-empty Match is skipped (it does not match). Checked only after matchHolds
    // succeeded (an all-empty Match always "holds"), so a failing Match costs just the groups
    // read up to the first failure — at 100k rules per evaluation, memory traffic is the cost.
    if (matchHolds(m, peer) && !m.allEmpty()) {
      return true;
    }
  }
  return false;
}

bool policyHolds(const Authorization& policy, const Peer& peer) {
  for (const Rule& rule : policy.rules) {
    bool all = true;
    for (const Clause& clause : rule.clauses) {
      if (!clauseHolds(clause, peer)) {
        all = false;
        break;
      }
    }
    if (all) {
      return true;
    }
  }
  return false;  // includes zero rules
}

std::string describe(const Authorization& p) {
  return p.namespace_ + "/" + p.name;
}

}  // namespace

bool policyMatches(const state::Authorization& policy, const ConnectionInfo& connection) {
  return policyHolds(policy, Peer(connection));
}

namespace {

// §4.4 over any policy source offering forEach(action, dryRun, visit) with early stop.
template <class Source>
Decision evaluateFrom(const Source& source, const ConnectionInfo& connection) {
  const Peer peer(connection);
  Decision d;

  // 1. Dry-run DENY: log matches only.
  source.forEach(PolicyAction::kDeny, true, [&](const Authorization& p) {
    if (policyHolds(p, peer)) {
      d.dryRunLog.push_back("dry-run: DENY policy " + describe(p) + " would deny");
    }
    return true;
  });
  // 2. Enforced DENY.
  source.forEach(PolicyAction::kDeny, false, [&](const Authorization& p) {
    if (policyHolds(p, peer)) {
      d.allowed = false;
      d.reason = Decision::Reason::kExplicitlyDenied;
      d.policy = &p;
      return false;
    }
    return true;
  });
  if (!d.allowed) {
    return d;
  }
  // 3. Dry-run ALLOW: log matches, or that none would match.
  bool anyDryRunAllow = false;
  bool dryRunAllowMatched = false;
  source.forEach(PolicyAction::kAllow, true, [&](const Authorization& p) {
    anyDryRunAllow = true;
    if (policyHolds(p, peer)) {
      dryRunAllowMatched = true;
      d.dryRunLog.push_back("dry-run: ALLOW policy " + describe(p) + " would allow");
    }
    return true;
  });
  if (anyDryRunAllow && !dryRunAllowMatched) {
    d.dryRunLog.push_back("dry-run: no ALLOW policy would allow");
  }
  // 4./5. Enforced ALLOW.
  bool anyAllow = false;
  source.forEach(PolicyAction::kAllow, false, [&](const Authorization& p) {
    anyAllow = true;
    if (policyHolds(p, peer)) {
      d.reason = Decision::Reason::kAllowMatched;
      d.policy = &p;
      return false;
    }
    return true;
  });
  if (d.reason == Decision::Reason::kAllowMatched) {
    return d;
  }
  d.allowed = !anyAllow;
  d.reason = anyAllow ? Decision::Reason::kNoAllowMatched : Decision::Reason::kNoAllowPolicies;
  return d;
}

struct ListSource {
  std::span<const Authorization* const> policies;
  template <class F>
  void forEach(PolicyAction action, bool dryRun, F&& visit) const {
    for (const Authorization* p : policies) {
      if (p->action == action && p->dryRun == dryRun && !visit(*p)) {
        return;
      }
    }
  }
};

struct StateSource {
  const state::ProxyState& state;
  const state::Workload& destination;
  template <class F>
  void forEach(PolicyAction action, bool dryRun, F&& visit) const {
    state.forEachPolicyFor(destination, action, dryRun, visit);
  }
};

}  // namespace

Decision evaluate(std::span<const state::Authorization* const> policies,
                  const ConnectionInfo& connection) {
  return evaluateFrom(ListSource{policies}, connection);
}

Decision evaluate(const state::ProxyState& state, const state::Workload& destination,
                  const ConnectionInfo& connection) {
  return evaluateFrom(StateSource{state, destination}, connection);
}

std::string Decision::reasonText() const {
  switch (reason) {
    case Reason::kNoAllowPolicies:
      return "no allow policies";
    case Reason::kAllowMatched:
      return "allowed by " + (policy ? describe(*policy) : std::string("?"));
    case Reason::kExplicitlyDenied:
      return "explicitly denied by " + (policy ? describe(*policy) : std::string("?"));
    case Reason::kNoAllowMatched:
      return "allow policies exist, but none allowed";
  }
  return "?";
}

}  // namespace zt::rbac
