#include "ztunnel/rbac/authorization.h"

#include <gtest/gtest.h>

#include <cctype>
#include <string>
#include <vector>

#include "ztunnel/state/random.h"

namespace zt::rbac {
namespace {

using state::Authorization;
using state::Clause;
using state::Match;
using state::PolicyAction;
using state::PolicyScope;
using state::Rule;
using state::ServiceAccountMatch;
using state::StringMatch;

IpAddress ip(std::string_view s) {
  return *IpAddress::parse(s);
}
Cidr cidr(std::string_view s) {
  return *Cidr::parse(s);
}

ConnectionInfo mtls(std::string ns, std::string sa, std::string td = "cluster.local") {
  ConnectionInfo c;
  c.sourceIdentity = state::Identity{std::move(td), std::move(ns), std::move(sa)};
  c.sourceIp = ip("10.0.1.5");
  c.destinationIp = ip("10.0.2.7");
  c.destinationPort = 8080;
  return c;
}

ConnectionInfo plaintext() {
  ConnectionInfo c;
  c.sourceIp = ip("10.0.1.5");
  c.destinationIp = ip("10.0.2.7");
  c.destinationPort = 8080;
  return c;
}

// A policy with one rule, one clause, one match.
Authorization single(Match m, PolicyAction action = PolicyAction::kAllow, std::string name = "p") {
  Authorization p;
  p.name = std::move(name);
  p.namespace_ = "ns";
  p.scope = PolicyScope::kNamespace;
  p.action = action;
  p.rules = {Rule{{Clause{{std::move(m)}}}}};
  return p;
}

// ---------------------------------------------------------------------------------------------
// Field semantics: one Match against one connection (table-driven).

struct MatchCase {
  std::string name;
  Match match;
  ConnectionInfo conn;
  bool expected;
};

std::vector<MatchCase> matchCases() {
  std::vector<MatchCase> cases;
  auto add = [&](std::string name, Match m, ConnectionInfo c, bool expected) {
    cases.push_back({std::move(name), std::move(m), std::move(c), expected});
  };
  Match m;

  // principals: compared without "spiffe://".
  m = {};
  m.principals = {StringMatch::exact("cluster.local/ns/a/sa/b")};
  add("principal exact", m, mtls("a", "b"), true);
  add("principal exact other sa", m, mtls("a", "c"), false);
  add("principal exact other trust domain", m, mtls("a", "b", "td2"), false);
  add("principal without identity", m, plaintext(), false);
  m.principals = {StringMatch::exact("spiffe://cluster.local/ns/a/sa/b")};
  add("principal with spiffe:// prefix never matches", m, mtls("a", "b"), false);
  m.principals = {StringMatch::prefix("cluster.local/ns/a/")};
  add("principal prefix", m, mtls("a", "zzz"), true);
  add("principal prefix miss", m, mtls("ab", "zzz"), false);
  m.principals = {StringMatch::suffix("/sa/b")};
  add("principal suffix", m, mtls("x", "b"), true);
  add("principal suffix miss", m, mtls("x", "bb"), false);
  m.principals = {StringMatch::presence()};
  add("principal presence", m, mtls("x", "y"), true);
  add("principal presence plaintext", m, plaintext(), false);
  m.principals = {StringMatch::exact("nope"), StringMatch::exact("cluster.local/ns/a/sa/b")};
  add("principals OR within group", m, mtls("a", "b"), true);

  // not_principals.
  m = {};
  m.notPrincipals = {StringMatch::presence()};
  add("notPrincipals presence matches plaintext", m, plaintext(), true);
  add("notPrincipals presence rejects mtls", m, mtls("a", "b"), false);
  m.notPrincipals = {StringMatch::exact("cluster.local/ns/a/sa/b")};
  add("notPrincipals exact other", m, mtls("a", "c"), true);
  add("notPrincipals exact same", m, mtls("a", "b"), false);

  // namespaces: from the identity, "" without one.
  m = {};
  m.namespaces = {StringMatch::exact("a")};
  add("namespace exact", m, mtls("a", "b"), true);
  add("namespace exact miss", m, mtls("c", "b"), false);
  add("namespace plaintext", m, plaintext(), false);
  m.namespaces = {StringMatch::prefix("team-")};
  add("namespace prefix", m, mtls("team-x", "b"), true);
  m.namespaces = {StringMatch::presence()};
  add("namespace presence", m, mtls("a", "b"), true);
  add("namespace presence plaintext", m, plaintext(), false);
  m = {};
  m.notNamespaces = {StringMatch::exact("kube-system")};
  add("notNamespaces other", m, mtls("a", "b"), true);
  add("notNamespaces same", m, mtls("kube-system", "b"), false);
  add("notNamespaces plaintext", m, plaintext(), true);

  // service accounts: exact ns + sa, trust domain ignored.
  m = {};
  m.serviceAccounts = {ServiceAccountMatch{"a", "b"}};
  add("sa match", m, mtls("a", "b"), true);
  add("sa match other trust domain", m, mtls("a", "b", "other.td"), true);
  add("sa wrong ns", m, mtls("x", "b"), false);
  add("sa wrong sa", m, mtls("a", "x"), false);
  add("sa plaintext", m, plaintext(), false);
  m = {};
  m.notServiceAccounts = {ServiceAccountMatch{"a", "b"}};
  add("notServiceAccounts same", m, mtls("a", "b"), false);
  add("notServiceAccounts other", m, mtls("a", "c"), true);
  add("notServiceAccounts plaintext", m, plaintext(), true);

  // source IPs.
  m = {};
  m.sourceIps = {cidr("10.0.1.0/24")};
  add("sourceIp in cidr", m, plaintext(), true);
  m.sourceIps = {cidr("10.0.9.0/24")};
  add("sourceIp outside cidr", m, plaintext(), false);
  m.sourceIps = {cidr("10.0.1.5")};
  add("sourceIp host", m, plaintext(), true);
  m.sourceIps = {cidr("::/0")};
  add("sourceIp v6 cidr vs v4 source", m, plaintext(), false);
  m = {};
  m.notSourceIps = {cidr("10.0.0.0/8")};
  add("notSourceIps contains", m, plaintext(), false);
  m.notSourceIps = {cidr("192.168.0.0/16")};
  add("notSourceIps not contains", m, plaintext(), true);
  {
    ConnectionInfo v6 = plaintext();
    v6.sourceIp = ip("fd00::5");
    m = {};
    m.sourceIps = {cidr("fd00::/64")};
    add("sourceIp v6", m, v6, true);
  }

  // destination IPs and ports (post-resolution values).
  m = {};
  m.destinationIps = {cidr("10.0.2.0/24")};
  add("destinationIp in", m, plaintext(), true);
  m.destinationIps = {cidr("10.0.3.0/24")};
  add("destinationIp out", m, plaintext(), false);
  m = {};
  m.notDestinationIps = {cidr("10.0.2.7/32")};
  add("notDestinationIps same", m, plaintext(), false);
  m = {};
  m.destinationPorts = {80, 8080};
  add("destinationPorts contains", m, plaintext(), true);
  m.destinationPorts = {80};
  add("destinationPorts missing", m, plaintext(), false);
  m.destinationPorts = {8080 + 65536};
  add("destinationPorts above 65535 never match", m, plaintext(), false);
  m = {};
  m.notDestinationPorts = {9999};
  add("notDestinationPorts other", m, plaintext(), true);
  m.notDestinationPorts = {8080};
  add("notDestinationPorts same", m, plaintext(), false);

  // Groups AND-ed within a Match; positive and negative within a group both apply.
  m = {};
  m.namespaces = {StringMatch::exact("a")};
  m.destinationPorts = {8080};
  add("groups AND all hold", m, mtls("a", "b"), true);
  m.destinationPorts = {80};
  add("groups AND one fails", m, mtls("a", "b"), false);
  m = {};
  m.principals = {StringMatch::prefix("cluster.local/ns/a/")};
  m.notPrincipals = {StringMatch::suffix("/sa/banned")};
  add("positive and negative: allowed one", m, mtls("a", "ok"), true);
  add("positive and negative: banned one", m, mtls("a", "banned"), false);
  m = {};
  m.notPrincipals = {StringMatch::presence()};
  m.notDestinationPorts = {9090};
  add("static strict with port exception: plaintext other port", m, plaintext(), true);
  {
    ConnectionInfo c = plaintext();
    c.destinationPort = 9090;
    add("static strict with port exception: plaintext excepted port", m, c, false);
  }
  add("static strict with port exception: mtls", m, mtls("a", "b"), false);
  return cases;
}

class FieldSemantics : public ::testing::TestWithParam<MatchCase> {};

TEST_P(FieldSemantics, Match) {
  const MatchCase& c = GetParam();
  EXPECT_EQ(policyMatches(single(c.match), c.conn), c.expected) << c.name;
}

INSTANTIATE_TEST_SUITE_P(Matrix, FieldSemantics, ::testing::ValuesIn(matchCases()),
                         [](const ::testing::TestParamInfo<MatchCase>& info) {
                           std::string n;
                           for (char ch : info.param.name) {
                             n += std::isalnum(static_cast<unsigned char>(ch)) ? ch : '_';
                           }
                           return n;
                         });

// ---------------------------------------------------------------------------------------------
// Structure: rules OR, clauses AND, matches OR, edge cases.

Match port(uint32_t p) {
  Match m;
  m.destinationPorts = {p};
  return m;
}

TEST(Structure, ZeroRulesNeverMatch) {
  Authorization p = single(port(8080));
  p.rules.clear();
  EXPECT_FALSE(policyMatches(p, plaintext()));
}

TEST(Structure, RuleWithZeroClausesMatches) {
  Authorization p = single(port(1));
  p.rules = {Rule{}};
  EXPECT_TRUE(policyMatches(p, plaintext()));
}

TEST(Structure, ClauseWithZeroMatchesIsTrue) {
  Authorization p = single(port(8080));
  p.rules[0].clauses.push_back(Clause{});
  EXPECT_TRUE(policyMatches(p, plaintext()));
  p.rules[0].clauses[0] = Clause{{port(1)}};
  EXPECT_FALSE(policyMatches(p, plaintext()));  // the empty clause does not rescue the other
}

TEST(Structure, AllEmptyMatchIsSkipped) {
  Authorization p = single(Match{});
  EXPECT_FALSE(policyMatches(p, plaintext()));  // clause [{}] is false
  p.rules[0].clauses[0].matches.push_back(port(8080));
  EXPECT_TRUE(policyMatches(p, plaintext()));  // [{}, {ports:[8080]}] ⇒ second decides
  p.rules[0].clauses[0].matches[1] = port(1);
  EXPECT_FALSE(policyMatches(p, plaintext()));
}

TEST(Structure, MatchesOredWithinClause) {
  Authorization p = single(port(1));
  p.rules[0].clauses[0].matches.push_back(port(8080));
  EXPECT_TRUE(policyMatches(p, plaintext()));
}

TEST(Structure, ClausesAndedWithinRule) {
  Authorization p = single(port(8080));
  Match ns;
  ns.namespaces = {StringMatch::exact("a")};
  p.rules[0].clauses.push_back(Clause{{ns}});
  EXPECT_TRUE(policyMatches(p, mtls("a", "b")));
  EXPECT_FALSE(policyMatches(p, mtls("c", "b")));
  EXPECT_FALSE(policyMatches(p, plaintext()));
}

TEST(Structure, RulesOred) {
  Authorization p = single(port(1));
  p.rules.push_back(Rule{{Clause{{port(8080)}}}});
  EXPECT_TRUE(policyMatches(p, plaintext()));
  p.rules[1] = Rule{{Clause{{port(2)}}}};
  EXPECT_FALSE(policyMatches(p, plaintext()));
}

// ---------------------------------------------------------------------------------------------
// Evaluation order (§4.4).

Decision run(std::vector<Authorization>& policies, const ConnectionInfo& c) {
  std::vector<const Authorization*> ptrs;
  for (const auto& p : policies) {
    ptrs.push_back(&p);
  }
  return evaluate(std::span<const Authorization* const>(ptrs), c);
}

TEST(Evaluate, NoPoliciesAllows) {
  std::vector<Authorization> none;
  Decision d = run(none, plaintext());
  EXPECT_TRUE(d.allowed);
  EXPECT_EQ(d.reason, Decision::Reason::kNoAllowPolicies);
  EXPECT_EQ(d.reasonText(), "no allow policies");
  EXPECT_TRUE(d.dryRunLog.empty());
  EXPECT_EQ(d.policy, nullptr);
}

TEST(Evaluate, AllowMatchAllows) {
  std::vector<Authorization> ps = {single(port(8080), PolicyAction::kAllow, "allow-8080")};
  Decision d = run(ps, plaintext());
  EXPECT_TRUE(d.allowed);
  EXPECT_EQ(d.reason, Decision::Reason::kAllowMatched);
  EXPECT_EQ(d.policy, &ps[0]);
  EXPECT_EQ(d.reasonText(), "allowed by ns/allow-8080");
}

TEST(Evaluate, AllowWithoutMatchDenies) {
  std::vector<Authorization> ps = {single(port(1))};
  Decision d = run(ps, plaintext());
  EXPECT_FALSE(d.allowed);
  EXPECT_EQ(d.reason, Decision::Reason::kNoAllowMatched);
  EXPECT_EQ(d.reasonText(), "allow policies exist, but none allowed");
}

TEST(Evaluate, AllowWithZeroRulesDeniesEverything) {
  std::vector<Authorization> ps = {single(port(8080))};
  ps[0].rules.clear();
  EXPECT_FALSE(run(ps, plaintext()).allowed);
}

TEST(Evaluate, DenyWithZeroRulesDeniesNothing) {
  std::vector<Authorization> ps = {single(port(8080), PolicyAction::kDeny)};
  ps[0].rules.clear();
  EXPECT_TRUE(run(ps, plaintext()).allowed);
}

TEST(Evaluate, DenyMatchDenies) {
  std::vector<Authorization> ps = {single(port(8080), PolicyAction::kDeny, "deny-8080")};
  Decision d = run(ps, plaintext());
  EXPECT_FALSE(d.allowed);
  EXPECT_EQ(d.reason, Decision::Reason::kExplicitlyDenied);
  EXPECT_EQ(d.reasonText(), "explicitly denied by ns/deny-8080");
  EXPECT_EQ(d.policy, &ps[0]);
}

TEST(Evaluate, DenyBeatsAllow) {
  std::vector<Authorization> ps = {single(port(8080), PolicyAction::kAllow, "allow"),
                                   single(port(8080), PolicyAction::kDeny, "deny")};
  Decision d = run(ps, plaintext());
  EXPECT_FALSE(d.allowed);
  EXPECT_EQ(d.policy, &ps[1]);
}

TEST(Evaluate, NonMatchingDenyFallsThroughToAllow) {
  std::vector<Authorization> ps = {single(port(1), PolicyAction::kDeny, "deny"),
                                   single(port(8080), PolicyAction::kAllow, "allow")};
  Decision d = run(ps, plaintext());
  EXPECT_TRUE(d.allowed);
  EXPECT_EQ(d.reason, Decision::Reason::kAllowMatched);
  // A deny that does not match and no allow policies: allowed.
  std::vector<Authorization> only = {single(port(1), PolicyAction::kDeny, "deny")};
  EXPECT_EQ(run(only, plaintext()).reason, Decision::Reason::kNoAllowPolicies);
}

TEST(Evaluate, AnyOfSeveralAllowsSuffices) {
  std::vector<Authorization> ps = {single(port(1), PolicyAction::kAllow, "a"),
                                   single(port(8080), PolicyAction::kAllow, "b"),
                                   single(port(2), PolicyAction::kAllow, "c")};
  Decision d = run(ps, plaintext());
  EXPECT_TRUE(d.allowed);
  EXPECT_EQ(d.policy->name, "b");
}

TEST(Evaluate, DryRunDenyOnlyLogs) {
  std::vector<Authorization> ps = {single(port(8080), PolicyAction::kDeny, "dry-deny")};
  ps[0].dryRun = true;
  Decision d = run(ps, plaintext());
  EXPECT_TRUE(d.allowed);
  EXPECT_EQ(d.reason, Decision::Reason::kNoAllowPolicies);
  ASSERT_EQ(d.dryRunLog.size(), 1u);
  EXPECT_EQ(d.dryRunLog[0], "dry-run: DENY policy ns/dry-deny would deny");

  ps[0].rules = {Rule{{Clause{{port(1)}}}}};
  EXPECT_TRUE(run(ps, plaintext()).dryRunLog.empty());  // deny dry-runs log only on match
}

TEST(Evaluate, DryRunAllowDoesNotCountAsAllowPolicy) {
  std::vector<Authorization> ps = {single(port(1), PolicyAction::kAllow, "dry-allow")};
  ps[0].dryRun = true;
  Decision d = run(ps, plaintext());
  EXPECT_TRUE(d.allowed);  // no enforced allow policy
  EXPECT_EQ(d.reason, Decision::Reason::kNoAllowPolicies);
  ASSERT_EQ(d.dryRunLog.size(), 1u);
  EXPECT_EQ(d.dryRunLog[0], "dry-run: no ALLOW policy would allow");

  ps[0].rules = {Rule{{Clause{{port(8080)}}}}};
  Decision d2 = run(ps, plaintext());
  ASSERT_EQ(d2.dryRunLog.size(), 1u);
  EXPECT_EQ(d2.dryRunLog[0], "dry-run: ALLOW policy ns/dry-allow would allow");
}

TEST(Evaluate, DryRunLogOrderAndEnforcedDenyStops) {
  std::vector<Authorization> ps = {single(port(8080), PolicyAction::kAllow, "dry-allow"),
                                   single(port(8080), PolicyAction::kDeny, "dry-deny"),
                                   single(port(8080), PolicyAction::kAllow, "allow")};
  ps[0].dryRun = true;
  ps[1].dryRun = true;
  Decision d = run(ps, plaintext());
  EXPECT_TRUE(d.allowed);
  EXPECT_EQ(d.policy->name, "allow");
  ASSERT_EQ(d.dryRunLog.size(), 2u);
  EXPECT_EQ(d.dryRunLog[0], "dry-run: DENY policy ns/dry-deny would deny");  // step 1 first
  EXPECT_EQ(d.dryRunLog[1], "dry-run: ALLOW policy ns/dry-allow would allow");

  // An enforced deny stops before the dry-run allow step.
  ps.push_back(single(port(8080), PolicyAction::kDeny, "deny"));
  Decision d2 = run(ps, plaintext());
  EXPECT_FALSE(d2.allowed);
  ASSERT_EQ(d2.dryRunLog.size(), 1u);
  EXPECT_EQ(d2.dryRunLog[0], "dry-run: DENY policy ns/dry-deny would deny");
}

// ---------------------------------------------------------------------------------------------
// Through ProxyState: which policies apply (§4.3) + evaluation.

TEST(EvaluateState, PoliciesForDestinationApply) {
  state::StateOptions opts;
  state::ProxyState::Builder b(opts);
  state::Workload strictWl;
  strictWl.uid = "strict";
  strictWl.namespace_ = "apps";
  strictWl.name = "strict";
  strictWl.authorizationPolicies = {"istio-system/istio_converted_static_strict"};
  state::Workload openWl = strictWl;
  openWl.uid = "open";
  openWl.name = "open";
  openWl.authorizationPolicies.clear();
  state::Workload otherNs = openWl;
  otherNs.uid = "other";
  otherNs.namespace_ = "other";
  ASSERT_TRUE(b.addWorkload(strictWl));
  ASSERT_TRUE(b.addWorkload(openWl));
  ASSERT_TRUE(b.addWorkload(otherNs));

  Match noPrincipal;
  noPrincipal.notPrincipals = {StringMatch::presence()};
  Authorization strict = single(noPrincipal, PolicyAction::kDeny, "istio_converted_static_strict");
  strict.namespace_ = "istio-system";
  strict.scope = PolicyScope::kWorkloadSelector;
  ASSERT_TRUE(b.addPolicy(strict));

  Match fromA;
  fromA.namespaces = {StringMatch::exact("a")};
  Authorization nsAllow = single(fromA, PolicyAction::kAllow, "allow-from-a");
  nsAllow.namespace_ = "apps";
  ASSERT_TRUE(b.addPolicy(nsAllow));
  auto state = std::move(b).build();

  const auto& s = *state;
  // Plaintext to the STRICT workload: denied by the static strict policy.
  Decision d1 = evaluate(s, *s.workloadByUid("strict"), plaintext());
  EXPECT_FALSE(d1.allowed);
  EXPECT_EQ(d1.reasonText(), "explicitly denied by istio-system/istio_converted_static_strict");
  // mTLS from namespace a: allowed by the namespace policy.
  Decision d2 = evaluate(s, *s.workloadByUid("strict"), mtls("a", "x"));
  EXPECT_TRUE(d2.allowed);
  EXPECT_EQ(d2.reasonText(), "allowed by apps/allow-from-a");
  // mTLS from namespace b: the namespace allow policy applies but does not match.
  Decision d3 = evaluate(s, *s.workloadByUid("open"), mtls("b", "x"));
  EXPECT_FALSE(d3.allowed);
  EXPECT_EQ(d3.reasonText(), "allow policies exist, but none allowed");
  // Plaintext to the open workload (not selected by strict) from namespace "": denied by the
  // allow policy, not by strict.
  EXPECT_EQ(evaluate(s, *s.workloadByUid("open"), plaintext()).reason,
            Decision::Reason::kNoAllowMatched);
  // Another namespace has no policies at all.
  EXPECT_EQ(evaluate(s, *s.workloadByUid("other"), plaintext()).reason,
            Decision::Reason::kNoAllowPolicies);
}

}  // namespace
}  // namespace zt::rbac

namespace zt::rbac {
namespace {

// Property: evaluating through the ProxyState (kind-split indexes) decides exactly like
// evaluating the flat list ProxyState::policiesFor returns, on random policies and connections.
TEST(EvaluateState, IndexedPathEqualsFlatList) {
  state::FastRandom rng(2024);
  auto pick = [&](uint64_t n) { return rng.uniform(n); };
  const char* namespaces[] = {"a", "b", "istio-system"};
  int disagreements = 0;
  for (int round = 0; round < 200; ++round) {
    state::ProxyState::Builder b;
    state::Workload dst;
    dst.uid = "dst";
    dst.name = "dst";
    dst.namespace_ = namespaces[pick(3)];
    const int nPolicies = static_cast<int>(pick(8));
    for (int i = 0; i < nPolicies; ++i) {
      Authorization p;
      p.name = "p" + std::to_string(i);
      p.namespace_ = namespaces[pick(3)];
      p.scope = static_cast<PolicyScope>(pick(3));
      p.action = pick(2) ? PolicyAction::kDeny : PolicyAction::kAllow;
      p.dryRun = pick(4) == 0;
      const int nRules = static_cast<int>(pick(3));
      for (int r = 0; r < nRules; ++r) {
        Rule rule;
        const int nClauses = static_cast<int>(pick(3));
        for (int c = 0; c < nClauses; ++c) {
          Clause clause;
          const int nMatches = static_cast<int>(pick(3));
          for (int m = 0; m < nMatches; ++m) {
            Match match;
            switch (pick(5)) {
              case 0:
                match.namespaces = {StringMatch::exact(namespaces[pick(3)])};
                break;
              case 1:
                match.notPrincipals = {StringMatch::presence()};
                break;
              case 2:
                match.destinationPorts = {static_cast<uint32_t>(8080 + pick(2))};
                break;
              case 3:
                match.sourceIps = {cidr(pick(2) ? "10.0.0.0/8" : "192.168.0.0/16")};
                break;
              default:
                break;  // all-empty match
            }
            clause.matches.push_back(std::move(match));
          }
          rule.clauses.push_back(std::move(clause));
        }
        p.rules.push_back(std::move(rule));
      }
      if (pick(2)) {
        dst.authorizationPolicies.push_back(p.key());
      }
      ASSERT_TRUE(b.addPolicy(std::move(p)));
    }
    if (pick(3) == 0) {
      dst.authorizationPolicies.push_back("a/missing");
    }
    ASSERT_TRUE(b.addWorkload(dst));
    auto st = std::move(b).build();
    const state::Workload& w = *st->workloadByUid("dst");
    ConnectionInfo conn = pick(2) ? plaintext() : mtls(namespaces[pick(3)], "sa");
    conn.destinationPort = static_cast<uint16_t>(8080 + pick(2));
    auto flat = st->policiesFor(w);
    Decision viaState = evaluate(*st, w, conn);
    Decision viaList = evaluate(std::span<const Authorization* const>(flat), conn);
    if (viaState.allowed != viaList.allowed || viaState.reason != viaList.reason ||
        viaState.policy != viaList.policy || viaState.dryRunLog != viaList.dryRunLog) {
      ++disagreements;
    }
  }
  EXPECT_EQ(disagreements, 0);
}

}  // namespace
}  // namespace zt::rbac
