// RBAC evaluation cost at ztunnel's benchmark scale (10,000 policies × 10 rules), plus smaller
// policy counts for the shape of the curve. One iteration = one connection authorized.
//
// Worst case by construction: every policy applies to the destination (namespace scope) and none
// matches, so each evaluation walks every rule of every policy and ends in "allow policies exist,
// but none allowed" — what a connection from an unlisted client costs.

#include <benchmark/benchmark.h>

#include <string>

#include "ztunnel/rbac/authorization.h"
#include "ztunnel/state/proxy_state.h"

namespace {

using namespace zt;

std::shared_ptr<const state::ProxyState> makeState(int policies, int rulesPerPolicy) {
  state::ProxyState::Builder b;
  state::Workload dst;
  dst.uid = "cluster//Pod/default/server";
  dst.name = "server";
  dst.namespace_ = "default";
  dst.workloadIps = {*IpAddress::parse("10.0.0.2")};
  (void)b.addWorkload(dst);
  for (int i = 0; i < policies; ++i) {
    state::Authorization p;
    p.name = "policy-" + std::to_string(i);
    p.namespace_ = "default";
    p.scope = state::PolicyScope::kNamespace;
    p.action = state::PolicyAction::kAllow;
    for (int r = 0; r < rulesPerPolicy; ++r) {
      // A typical translated AuthorizationPolicy rule: a "from" clause (principal + namespace)
      // and a "to" clause (ports).
      state::Match from;
      from.principals = {state::StringMatch::exact("cluster.local/ns/client-" + std::to_string(i) +
                                                   "/sa/sa-" + std::to_string(r))};
      from.namespaces = {state::StringMatch::exact("client-" + std::to_string(i))};
      state::Match to;
      to.destinationPorts = {static_cast<uint32_t>(8000 + r)};
      p.rules.push_back(state::Rule{{state::Clause{{from}}, state::Clause{{to}}}});
    }
    (void)b.addPolicy(std::move(p));
  }
  return std::move(b).build();
}

rbac::ConnectionInfo connection() {
  rbac::ConnectionInfo c;
  c.sourceIdentity = state::Identity{"cluster.local", "stranger", "default"};
  c.sourceIp = *IpAddress::parse("10.0.0.1");
  c.destinationIp = *IpAddress::parse("10.0.0.2");
  c.destinationPort = 8080;
  return c;
}

void BM_Rbac_Evaluate(benchmark::State& st) {
  const int policies = static_cast<int>(st.range(0));
  const int rules = static_cast<int>(st.range(1));
  auto state = makeState(policies, rules);
  const state::Workload& dst = *state->workloadByUid("cluster//Pod/default/server");
  const rbac::ConnectionInfo conn = connection();
  for (auto _ : st) {
    rbac::Decision d = rbac::evaluate(*state, dst, conn);
    benchmark::DoNotOptimize(d);
    if (d.allowed) {
      st.SkipWithError("unexpectedly allowed");
      break;
    }
  }
  st.SetItemsProcessed(st.iterations());
  st.counters["rules_per_eval"] = static_cast<double>(policies) * rules;
}
BENCHMARK(BM_Rbac_Evaluate)->Args({10, 10})->Args({1000, 10})->Args({10000, 10});

// The common case: few policies, the client is allowed by the first one.
void BM_Rbac_EvaluateAllowed(benchmark::State& st) {
  auto state = makeState(static_cast<int>(st.range(0)), 10);
  const state::Workload& dst = *state->workloadByUid("cluster//Pod/default/server");
  rbac::ConnectionInfo conn = connection();
  conn.sourceIdentity = state::Identity{"cluster.local", "client-0", "sa-0"};
  conn.destinationPort = 8000;
  for (auto _ : st) {
    rbac::Decision d = rbac::evaluate(*state, dst, conn);
    benchmark::DoNotOptimize(d);
    if (!d.allowed) {
      st.SkipWithError("unexpectedly denied");
      break;
    }
  }
  st.SetItemsProcessed(st.iterations());
}
BENCHMARK(BM_Rbac_EvaluateAllowed)->Arg(10)->Arg(10000);

}  // namespace
