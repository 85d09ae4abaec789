#pragma once

// Authorization: a plain C++ value mirroring istio.security.Authorization (authorization.proto,
// spec §3.4, semantics §4). rules (OR) -> clauses (AND) -> matches (OR) -> field groups (AND) ->
// values (OR). Evaluation lives in rbac/.
//
// Thread-safety: plain values; immutable once inside a published ProxyState.

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "ztunnel/core/sockaddr.h"

namespace zt::state {

enum class PolicyScope : uint8_t { kGlobal, kNamespace, kWorkloadSelector };
enum class PolicyAction : uint8_t { kAllow, kDeny };

std::string_view toString(PolicyScope s);
std::string_view toString(PolicyAction a);

struct StringMatch {
  enum class Kind : uint8_t { kExact, kPrefix, kSuffix, kPresence };
  Kind kind = Kind::kExact;
  std::string value;  // unused for kPresence

  static StringMatch exact(std::string v) { return {Kind::kExact, std::move(v)}; }
  static StringMatch prefix(std::string v) { return {Kind::kPrefix, std::move(v)}; }
  static StringMatch suffix(std::string v) { return {Kind::kSuffix, std::move(v)}; }
  static StringMatch presence() { return {Kind::kPresence, {}}; }

  // kPresence matches any non-empty string.
  bool matches(std::string_view s) const {
    switch (kind) {
      case Kind::kExact:
        return s == value;
      case Kind::kPrefix:
        return s.starts_with(value);
      case Kind::kSuffix:
        return s.ends_with(value);
      case Kind::kPresence:
        return !s.empty();
    }
    return false;
  }
  friend bool operator==(const StringMatch&, const StringMatch&) = default;
};

struct ServiceAccountMatch {
  std::string namespace_;
  std::string serviceAccount;
  friend bool operator==(const ServiceAccountMatch&, const ServiceAccountMatch&) = default;
};

// One Match: every non-empty field group must hold. A Match whose groups are all empty is
// treated as non-matching (§4.2).
struct Match {
  std::vector<StringMatch> namespaces;
  std::vector<StringMatch> notNamespaces;
  std::vector<ServiceAccountMatch> serviceAccounts;
  std::vector<ServiceAccountMatch> notServiceAccounts;
  std::vector<StringMatch> principals;
  std::vector<StringMatch> notPrincipals;
  std::vector<Cidr> sourceIps;
  std::vector<Cidr> notSourceIps;
  std::vector<Cidr> destinationIps;
  std::vector<Cidr> notDestinationIps;
  // uint32 as on the wire: a value above 65535 never matches a port (but keeps its group
  // non-empty, which matters for the semantics).
  std::vector<uint32_t> destinationPorts;
  std::vector<uint32_t> notDestinationPorts;

  bool allEmpty() const {
    return namespaces.empty() && notNamespaces.empty() && serviceAccounts.empty() &&
           notServiceAccounts.empty() && principals.empty() && notPrincipals.empty() &&
           sourceIps.empty() && notSourceIps.empty() && destinationIps.empty() &&
           notDestinationIps.empty() && destinationPorts.empty() && notDestinationPorts.empty();
  }
  friend bool operator==(const Match&, const Match&) = default;
};

// Matches OR-ed. A clause with zero matches is true.
struct Clause {
  std::vector<Match> matches;
  friend bool operator==(const Clause&, const Clause&) = default;
};

// Clauses AND-ed.
struct Rule {
  std::vector<Clause> clauses;
  friend bool operator==(const Rule&, const Rule&) = default;
};

struct Authorization {
  std::string name;
  std::string namespace_;
  PolicyScope scope = PolicyScope::kGlobal;
  PolicyAction action = PolicyAction::kAllow;
  std::vector<Rule> rules;  // OR-ed; zero rules never match
  bool dryRun = false;

  // "namespace/name".
  std::string key() const { return namespace_ + "/" + name; }
  friend bool operator==(const Authorization&, const Authorization&) = default;
};

}  // namespace zt::state
