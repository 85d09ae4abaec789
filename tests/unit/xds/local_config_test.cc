#include "ztunnel/xds/local_config.h"

#include <gtest/gtest.h>

#include <fstream>
#include <sstream>
#include <string>

#include "ztunnel/rbac/authorization.h"
#include "ztunnel/state/random.h"

namespace zt::xds {
namespace {

IpAddress ip(std::string_view s) {
  return *IpAddress::parse(s);
}

std::string readTestdata(const std::string& name) {
  std::ifstream in(std::string(ZT_TESTDATA_DIR) + "/local_config/" + name);
  EXPECT_TRUE(in.good()) << name;
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// The error detail of parsing `yaml` (which must fail).
std::string errorOf(std::string_view yaml) {
  auto r = parseLocalConfig(yaml, "local.yaml");
  EXPECT_FALSE(r.has_value()) << "parsed unexpectedly:\n" << yaml;
  if (r) {
    return {};
  }
  EXPECT_TRUE(r.error().is(XdsErrc::kInvalidConfig));
  return r.error().detail();
}

LocalConfig parseOk(std::string_view yaml) {
  auto r = parseLocalConfig(yaml, "local.yaml");
  EXPECT_TRUE(r.has_value()) << (r ? "" : r.error().message());
  return r ? *r : LocalConfig{};
}

constexpr std::string_view kWorkloadHead = R"(workloads:
- uid: u
  name: n
  namespace: ns
)";

std::string workloadWith(std::string_view extra) {
  return std::string(kWorkloadHead) + std::string(extra);
}

constexpr std::string_view kPolicyHead = R"(policies:
- name: p
  namespace: ns
  scope: Namespace
  action: Allow
)";

std::string policyWith(std::string_view extra) {
  return std::string(kPolicyHead) + std::string(extra);
}

// ---------------------------------------------------------------------------------------------
// Valid documents

TEST(LocalConfig, SpecExampleParsesAndBuilds) {
  auto cfg = parseOk(readTestdata("spec_example.yaml"));
  ASSERT_EQ(cfg.workloads.size(), 1u);
  ASSERT_EQ(cfg.services.size(), 1u);
  ASSERT_EQ(cfg.policies.size(), 1u);

  const auto& w = cfg.workloads[0];
  EXPECT_EQ(w.uid, "cluster1//v1/Pod/default/local");
  EXPECT_EQ(w.name, "local");
  EXPECT_EQ(w.namespace_, "default");
  EXPECT_EQ(w.serviceAccount, "default");
  ASSERT_EQ(w.workloadIps.size(), 1u);
  EXPECT_EQ(w.workloadIps[0], ip("127.0.0.1"));
  EXPECT_EQ(w.protocol, state::TunnelProtocol::kHbone);
  EXPECT_EQ(w.node, "local");
  EXPECT_EQ(w.capacity, 1u);
  EXPECT_EQ(w.clusterId, "");  // filled at build time
  ASSERT_EQ(w.services.count("default/example.com"), 1u);
  EXPECT_EQ(w.services.at("default/example.com").at(80), 8080);

  const auto& s = cfg.services[0];
  EXPECT_EQ(s.key(), "default/example.com");
  ASSERT_EQ(s.vips.size(), 1u);
  EXPECT_EQ(s.vips[0].network, "");
  EXPECT_EQ(s.vips[0].address, ip("127.10.0.1"));
  EXPECT_FALSE(s.vips[0].prefixLength.has_value());
  EXPECT_EQ(s.ports.at(80), 8080);
  EXPECT_EQ(s.subjectAltNames,
            std::vector<std::string>{"spiffe://cluster.local/ns/default/sa/local"});

  const auto& p = cfg.policies[0];
  EXPECT_EQ(p.key(), "default/deny-9999");
  EXPECT_EQ(p.scope, state::PolicyScope::kNamespace);
  EXPECT_EQ(p.action, state::PolicyAction::kAllow);
  EXPECT_FALSE(p.dryRun);
  ASSERT_EQ(p.rules.size(), 1u);
  ASSERT_EQ(p.rules[0].clauses.size(), 1u);
  ASSERT_EQ(p.rules[0].clauses[0].matches.size(), 1u);
  EXPECT_EQ(p.rules[0].clauses[0].matches[0].notDestinationPorts, std::vector<uint32_t>{9999});

  // Build and use it the way the proxy will.
  state::StateOptions opts;
  auto built = buildState(cfg, opts, 3);
  ASSERT_TRUE(built) << built.error().message();
  const state::ProxyState& st = **built;
  EXPECT_EQ(st.version(), 3u);
  const state::Workload* local = st.workloadByAddress("", ip("127.0.0.1"));
  ASSERT_NE(local, nullptr);
  EXPECT_EQ(local->clusterId, "Kubernetes");
  const state::Service* svc = st.serviceByVip("", ip("127.10.0.1"));
  ASSERT_NE(svc, nullptr);
  state::FastRandom rng(1);
  auto up = st.pickEndpoint(*svc, 80, local, rng);
  ASSERT_TRUE(up);
  EXPECT_EQ(up->address.toString(), "127.0.0.1:8080");
  EXPECT_NE(st.findLocalWorkload("default", "local", "default"), nullptr);

  rbac::ConnectionInfo conn;
  conn.sourceIdentity = state::Identity{"cluster.local", "default", "default"};
  conn.sourceIp = ip("127.0.0.1");
  conn.destinationIp = ip("127.0.0.1");
  conn.destinationPort = 8080;
  EXPECT_TRUE(rbac::evaluate(st, *local, conn).allowed);
  conn.destinationPort = 9999;
  EXPECT_FALSE(rbac::evaluate(st, *local, conn).allowed);
}

TEST(LocalConfig, LocalhostExample) {
  auto cfg = parseOk(readTestdata("localhost.yaml"));
  ASSERT_EQ(cfg.workloads.size(), 2u);
  EXPECT_EQ(cfg.workloads[1].protocol, state::TunnelProtocol::kNone);
  auto built = buildState(cfg, {});
  ASSERT_TRUE(built);
  EXPECT_EQ((*built)->workloadByAddress("", ip("127.0.0.2"))->name, "local-tcp");
}

TEST(LocalConfig, FullExampleCoversEveryKey) {
  auto cfg = parseOk(readTestdata("full.yaml"));
  ASSERT_EQ(cfg.workloads.size(), 3u);
  const auto& w = cfg.workloads[0];
  EXPECT_EQ(w.serviceAccount, "server");
  EXPECT_EQ(w.trustDomain, "example.org");
  ASSERT_EQ(w.workloadIps.size(), 2u);
  EXPECT_EQ(w.workloadIps[1], ip("fd00:10::5"));
  EXPECT_EQ(w.networkMode, state::NetworkMode::kStandard);
  EXPECT_EQ(w.network, "net1");
  EXPECT_EQ(w.workloadName, "server");
  EXPECT_EQ(w.workloadType, state::WorkloadType::kDeployment);
  EXPECT_EQ(w.canonicalName, "server");
  EXPECT_EQ(w.canonicalRevision, "v1");
  EXPECT_FALSE(w.nativeTunnel);
  ASSERT_TRUE(w.applicationTunnel);
  EXPECT_EQ(w.applicationTunnel->protocol, state::AppTunnelProtocol::kProxy);
  EXPECT_EQ(w.applicationTunnel->port, 15088);
  EXPECT_EQ(w.authorizationPolicies.size(), 2u);
  EXPECT_EQ(w.status, state::HealthStatus::kHealthy);
  EXPECT_EQ(w.clusterId, "cluster1");
  EXPECT_EQ(w.locality, (state::Locality{"eu", "eu-1", "rack-3"}));
  ASSERT_TRUE(w.waypoint);
  ASSERT_NE(w.waypoint->address(), nullptr);
  EXPECT_EQ(w.waypoint->address()->network, "net1");
  EXPECT_EQ(w.waypoint->address()->address, ip("10.10.9.9"));
  EXPECT_EQ(w.waypoint->hboneMtlsPort, 15008);
  EXPECT_EQ(w.capacity, 3u);
  EXPECT_EQ(w.services.at("apps/server.apps.svc.cluster.local").at(443), 8443);

  const auto& remote = cfg.workloads[1];
  EXPECT_EQ(remote.status, state::HealthStatus::kUnhealthy);
  ASSERT_TRUE(remote.networkGateway);
  ASSERT_NE(remote.networkGateway->hostname(), nullptr);
  EXPECT_EQ(remote.networkGateway->hostname()->key(),
            "istio-system/eastwest.istio-system.svc.cluster.local");
  EXPECT_EQ(remote.networkGateway->hboneMtlsPort, 15009);
  EXPECT_EQ(cfg.workloads[2].networkMode, state::NetworkMode::kHostNetwork);
  EXPECT_EQ(cfg.workloads[2].workloadType, state::WorkloadType::kPod);

  const auto& s = cfg.services[0];
  ASSERT_EQ(s.vips.size(), 3u);
  EXPECT_EQ(s.vips[1].network, "");
  EXPECT_EQ(s.vips[1].address, ip("fd00:96::10"));
  EXPECT_TRUE(s.vips[2].isCidr());
  EXPECT_EQ(*s.vips[2].prefixLength, 16);
  EXPECT_EQ(s.ports.at(443), 0);
  ASSERT_TRUE(s.waypoint);
  EXPECT_EQ(s.waypoint->hboneMtlsPort, 15008);  // default
  ASSERT_EQ(s.weightedWaypoints.size(), 2u);
  EXPECT_EQ(s.weightedWaypoints[0].weight, 90u);
  EXPECT_EQ(s.weightedWaypoints[1].weight, 10u);
  ASSERT_TRUE(s.loadBalancing);
  EXPECT_EQ(s.loadBalancing->mode, state::LbMode::kFailover);
  EXPECT_EQ(s.loadBalancing->healthPolicy, state::LbHealthPolicy::kAllowAll);
  EXPECT_EQ(s.loadBalancing->routingPreference.size(), 6u);
  EXPECT_EQ(s.loadBalancing->routingPreference[0], state::LbScope::kNetwork);
  EXPECT_EQ(s.ipFamilies, state::IpFamilies::kDual);
  EXPECT_TRUE(s.canonical);

  ASSERT_EQ(cfg.policies.size(), 3u);
  const auto& m = cfg.policies[0].rules[0].clauses[0].matches[0];
  EXPECT_EQ(m.principals.size(), 2u);
  EXPECT_EQ(m.principals[1].kind, state::StringMatch::Kind::kPrefix);
  EXPECT_EQ(m.notPrincipals[0].kind, state::StringMatch::Kind::kSuffix);
  EXPECT_EQ(m.namespaces[0].kind, state::StringMatch::Kind::kPresence);
  EXPECT_EQ(m.notNamespaces[0].value, "kube-system");
  EXPECT_EQ(m.serviceAccounts[0], (state::ServiceAccountMatch{"apps", "client"}));
  EXPECT_EQ(m.notServiceAccounts[0].serviceAccount, "banned");
  EXPECT_EQ(m.sourceIps.size(), 2u);
  EXPECT_EQ(m.notSourceIps[0].prefixLength(), 32);
  EXPECT_EQ(m.destinationIps.size(), 1u);
  EXPECT_EQ(m.notDestinationIps.size(), 1u);
  EXPECT_EQ(m.destinationPorts, (std::vector<uint32_t>{8080, 8443}));
  EXPECT_EQ(m.notDestinationPorts, std::vector<uint32_t>{9090});
  EXPECT_EQ(cfg.policies[0].rules[0].clauses.size(), 2u);
  EXPECT_TRUE(cfg.policies[2].dryRun);
  EXPECT_EQ(cfg.policies[2].scope, state::PolicyScope::kGlobal);
  EXPECT_EQ(cfg.policies[1].action, state::PolicyAction::kDeny);

  state::StateOptions opts;
  opts.network = "net1";
  auto built = buildState(cfg, opts);
  ASSERT_TRUE(built) << built.error().message();
  const auto& st = **built;
  // HOST_NETWORK workload is not addressable; CIDR VIP found; selector policies apply.
  EXPECT_EQ(st.workloadByAddress("", ip("10.10.9.10")), nullptr);
  EXPECT_EQ(st.serviceByVip("net1", ip("10.200.3.4"))->name, "server");
  EXPECT_EQ(st.policiesFor(*st.workloadByUid("cluster1//v1/Pod/apps/server-0")).size(), 3u);
}

TEST(LocalConfig, EmptyDocumentsAreEmptyConfigs) {
  for (std::string_view text :
       {"", "# only a comment\n", "---\n", "~\n", "workloads: []\nservices: []\npolicies: []\n",
        "workloads:\nservices:\n"}) {
    auto cfg = parseOk(text);
    EXPECT_TRUE(cfg.workloads.empty() && cfg.services.empty() && cfg.policies.empty()) << text;
  }
}

TEST(LocalConfig, DefaultsWhenKeysAbsent) {
  auto cfg = parseOk(kWorkloadHead);
  ASSERT_EQ(cfg.workloads.size(), 1u);
  const auto& w = cfg.workloads[0];
  EXPECT_EQ(w.protocol, state::TunnelProtocol::kNone);
  EXPECT_EQ(w.capacity, 1u);
  EXPECT_EQ(w.serviceAccount, "default");
  EXPECT_EQ(w.trustDomain, "cluster.local");
  EXPECT_TRUE(w.workloadIps.empty());
  EXPECT_FALSE(w.waypoint);
  EXPECT_FALSE(w.applicationTunnel);
  // A null value counts as absent.
  auto cfg2 = parseOk(workloadWith("  capacity: ~\n  protocol:\n"));
  EXPECT_EQ(cfg2.workloads[0].capacity, 1u);
  EXPECT_EQ(cfg2.workloads[0].protocol, state::TunnelProtocol::kNone);
}

TEST(LocalConfig, BuildStateFillsClusterId) {
  auto cfg = parseOk(R"(workloads:
- {uid: a, name: a, namespace: ns}
- {uid: b, name: b, namespace: ns, clusterId: explicit}
)");
  state::StateOptions opts;
  opts.clusterId = "cluster-east";
  auto built = buildState(cfg, opts);
  ASSERT_TRUE(built);
  EXPECT_EQ((*built)->workloadByUid("a")->clusterId, "cluster-east");
  EXPECT_EQ((*built)->workloadByUid("b")->clusterId, "explicit");
}

TEST(LocalConfig, VipForms) {
  auto cfg = parseOk(R"(services:
- name: s
  namespace: ns
  hostname: s.example
  vips: ["net/10.0.0.1", "/10.0.0.2", "/10.1.0.0/16", "net/fd00::1", "/fd00:1::/64", "/10.0.0.3/32"]
)");
  const auto& v = cfg.services[0].vips;
  ASSERT_EQ(v.size(), 6u);
  EXPECT_EQ(v[0].network, "net");
  EXPECT_EQ(v[1].network, "");
  EXPECT_TRUE(v[2].isCidr());
  EXPECT_EQ(v[3].address, ip("fd00::1"));
  EXPECT_TRUE(v[4].isCidr());
  EXPECT_FALSE(v[5].isCidr());  // full-length prefix = host address
}

TEST(LocalConfig, PresenceAcceptsEmptyForms) {
  auto cfg =
      parseOk(policyWith("  rules: [[[{principals: [{Presence: []}, {Presence: {}}, {Presence: ~}, "
                         "{Presence: }]}]]]\n"));
  const auto& ps = cfg.policies[0].rules[0].clauses[0].matches[0].principals;
  ASSERT_EQ(ps.size(), 4u);
  for (const auto& p : ps) {
    EXPECT_EQ(p.kind, state::StringMatch::Kind::kPresence);
  }
}

TEST(LocalConfig, QuotedPortKeysAccepted) {
  auto cfg = parseOk(R"(services:
- {name: s, namespace: ns, hostname: h, ports: {"80": 8080}}
)");
  EXPECT_EQ(cfg.services[0].ports.at(80), 8080);
}

// ---------------------------------------------------------------------------------------------
// Errors: each class, with its exact key path and line:column.

TEST(LocalConfigErrors, BadIpNamesKeyPathAndPosition) {
  const std::string yaml = R"(# comment line
workloads:
- uid: cluster1//v1/Pod/default/a
  name: a
  namespace: default
  protocol: HBONE
  node: node-1
  serviceAccount: sa
  trustDomain: cluster.local
  workloadIps:
  - "10.0.0.1"
  - "10.0.0.300"
)";
  EXPECT_EQ(errorOf(yaml),
            R"(local.yaml:12:5: workloads[0].workloadIps[1]: "10.0.0.300" is not an IP address)");
  EXPECT_EQ(parseLocalConfig(yaml, "local.yaml").error().message(),
            "xds: invalid configuration: local.yaml:12:5: workloads[0].workloadIps[1]: "
            "\"10.0.0.300\" is not an IP address");
}

TEST(LocalConfigErrors, SyntaxError) {
  EXPECT_EQ(errorOf("workloads: [\n"),
            "local.yaml:2:1: YAML syntax error: end of sequence flow not found");
  EXPECT_EQ(errorOf("workloads:\n- uid: a\n name: b\n"),
            "local.yaml:3:2: YAML syntax error: end of sequence not found");
}

TEST(LocalConfigErrors, TopLevelShape) {
  EXPECT_EQ(errorOf("- a\n"), "local.yaml:1:1: expected a map, got a list");
  EXPECT_EQ(errorOf("just text\n"), "local.yaml:1:1: expected a map, got a scalar");
  EXPECT_EQ(errorOf("workloads: []\nextra: 1\n"),
            "local.yaml:2:1: extra: unknown key (allowed: workloads, policies, services)");
  EXPECT_EQ(errorOf("workloads: {}\n"), "local.yaml:1:12: workloads: expected a list, got a map");
}

TEST(LocalConfigErrors, UnknownKey) {
  std::string err = errorOf(workloadWith("  bogus: 1\n"));
  EXPECT_TRUE(err.starts_with("local.yaml:5:3: workloads[0].bogus: unknown key (allowed: uid, "))
      << err;
  EXPECT_EQ(errorOf(workloadWith("  locality: {region: a, planet: b}\n")),
            "local.yaml:5:25: workloads[0].locality.planet: unknown key (allowed: region, zone, "
            "subzone)");
}

TEST(LocalConfigErrors, DuplicateKey) {
  EXPECT_EQ(errorOf(workloadWith("  name: again\n")),
            "local.yaml:5:3: workloads[0].name: duplicate key");
  EXPECT_EQ(errorOf(workloadWith("  services:\n    \"a/b\": {80: 1, 80: 2}\n")),
            "local.yaml:6:20: workloads[0].services[\"a/b\"]: duplicate key \"80\"");
}

TEST(LocalConfigErrors, MissingRequiredKeys) {
  EXPECT_EQ(errorOf("workloads:\n- name: a\n  namespace: ns\n"),
            "local.yaml:2:3: workloads[0]: missing required key \"uid\"");
  EXPECT_EQ(errorOf("workloads:\n- uid: a\n  namespace: ns\n"),
            "local.yaml:2:3: workloads[0]: missing required key \"name\"");
  EXPECT_EQ(errorOf("workloads:\n- {uid: a, name: a}\n"),
            "local.yaml:2:3: workloads[0]: missing required key \"namespace\"");
  EXPECT_EQ(errorOf("services:\n- {name: s, namespace: ns}\n"),
            "local.yaml:2:3: services[0]: missing required key \"hostname\"");
  EXPECT_EQ(errorOf("policies:\n- {name: p, namespace: ns, action: Allow}\n"),
            "local.yaml:2:3: policies[0]: missing required key \"scope\"");
  EXPECT_EQ(errorOf("policies:\n- {name: p, namespace: ns, scope: Global}\n"),
            "local.yaml:2:3: policies[0]: missing required key \"action\"");
  EXPECT_EQ(errorOf(policyWith("  rules: [[[{serviceAccounts: [{namespace: a}]}]]]\n")),
            "local.yaml:6:32: policies[0].rules[0][0][0].serviceAccounts[0]: missing required key "
            "\"serviceAccount\"");
  EXPECT_EQ(errorOf("workloads:\n- uid: \"\"\n  name: a\n  namespace: ns\n"),
            "local.yaml:2:8: workloads[0].uid: must not be empty");
}

TEST(LocalConfigErrors, WrongTypes) {
  EXPECT_EQ(errorOf(workloadWith("  workloadIps: \"10.0.0.1\"\n")),
            "local.yaml:5:16: workloads[0].workloadIps: expected a list, got a scalar");
  EXPECT_EQ(errorOf(workloadWith("  name2: x\n")).substr(0, 40),
            "local.yaml:5:3: workloads[0].name2: unkn");
  EXPECT_EQ(errorOf(workloadWith("  capacity: abc\n")),
            "local.yaml:5:13: workloads[0].capacity: \"abc\" is not a non-negative integer");
  EXPECT_EQ(errorOf(workloadWith("  capacity: -1\n")),
            "local.yaml:5:13: workloads[0].capacity: \"-1\" is not a non-negative integer");
  EXPECT_EQ(errorOf(workloadWith("  capacity: \"2\"\n")),
            "local.yaml:5:13: workloads[0].capacity: expected an integer, got the quoted string "
            "\"2\"");
  EXPECT_EQ(errorOf(workloadWith("  capacity: [1]\n")),
            "local.yaml:5:13: workloads[0].capacity: expected an integer, got a list");
  EXPECT_EQ(errorOf(workloadWith("  nativeTunnel: yes\n")),
            "local.yaml:5:17: workloads[0].nativeTunnel: \"yes\" is not a boolean (true or false)");
  EXPECT_EQ(errorOf(workloadWith("  node: {a: b}\n")),
            "local.yaml:5:9: workloads[0].node: expected a string, got a map");
  EXPECT_EQ(errorOf(workloadWith("  locality: eu\n")),
            "local.yaml:5:13: workloads[0].locality: expected a map, got a scalar");
}

TEST(LocalConfigErrors, OutOfRange) {
  EXPECT_EQ(errorOf(workloadWith("  services:\n    \"a/b\": {0: 1}\n")),
            "local.yaml:6:13: workloads[0].services[\"a/b\"][0]: 0 is out of range [1, 65535]");
  EXPECT_EQ(
      errorOf(workloadWith("  services:\n    \"a/b\": {80: 65536}\n")),
      "local.yaml:6:17: workloads[0].services[\"a/b\"][80]: 65536 is out of range [0, 65535]");
  EXPECT_EQ(errorOf(workloadWith("  capacity: 4294967296\n")),
            "local.yaml:5:13: workloads[0].capacity: 4294967296 is out of range [0, 4294967295]");
  EXPECT_EQ(errorOf(policyWith("  rules: [[[{destinationPorts: [70000]}]]]\n")),
            "local.yaml:6:33: policies[0].rules[0][0][0].destinationPorts[0]: 70000 is out of "
            "range [0, 65535]");
}

TEST(LocalConfigErrors, BadEnums) {
  EXPECT_EQ(errorOf(workloadWith("  protocol: hbone\n")),
            "local.yaml:5:13: workloads[0].protocol: \"hbone\" is not one of: HBONE, TCP");
  EXPECT_EQ(errorOf(workloadWith("  status: Dead\n")),
            "local.yaml:5:11: workloads[0].status: \"Dead\" is not one of: Healthy, Unhealthy");
  EXPECT_EQ(errorOf("policies:\n- {name: p, namespace: ns, scope: Cluster, action: Allow}\n"),
            "local.yaml:2:35: policies[0].scope: \"Cluster\" is not one of: Global, Namespace, "
            "WorkloadSelector");
  EXPECT_EQ(errorOf("policies:\n- {name: p, namespace: ns, scope: Global, action: Audit}\n"),
            "local.yaml:2:51: policies[0].action: \"Audit\" is not one of: Allow, Deny");
  EXPECT_EQ(errorOf("services:\n- name: s\n  namespace: ns\n  hostname: h\n"
                    "  loadBalancer: {mode: Random}\n"),
            "local.yaml:5:24: services[0].loadBalancer.mode: \"Random\" is not one of: Standard, "
            "Strict, Failover, Passthrough");
}

TEST(LocalConfigErrors, StringMatchShape) {
  EXPECT_EQ(errorOf(policyWith("  rules: [[[{principals: [{Regex: a}]}]]]\n")),
            "local.yaml:6:28: policies[0].rules[0][0][0].principals[0].Regex: unknown key "
            "(allowed: Exact, Prefix, Suffix, Presence)");
  EXPECT_EQ(errorOf(policyWith("  rules: [[[{principals: [{Exact: a, Prefix: b}]}]]]\n")),
            "local.yaml:6:27: policies[0].rules[0][0][0].principals[0]: expected exactly one of "
            "Exact, Prefix, Suffix, Presence");
  EXPECT_EQ(errorOf(policyWith("  rules: [[[{principals: [{}]}]]]\n")),
            "local.yaml:6:27: policies[0].rules[0][0][0].principals[0]: expected exactly one of "
            "Exact, Prefix, Suffix, Presence");
  EXPECT_EQ(errorOf(policyWith("  rules: [[[{principals: [\"a\"]}]]]\n")),
            "local.yaml:6:27: policies[0].rules[0][0][0].principals[0]: expected a map, got a "
            "scalar");
  EXPECT_EQ(errorOf(policyWith("  rules: [[[{principals: [{Presence: [x]}]}]]]\n")),
            "local.yaml:6:38: policies[0].rules[0][0][0].principals[0].Presence: Presence takes "
            "no value (use [], {} or null)");
  EXPECT_EQ(errorOf(policyWith("  rules: [[{destinationPorts: [80]}]]\n")),
            "local.yaml:6:12: policies[0].rules[0][0]: expected a list, got a map");
}

TEST(LocalConfigErrors, BadCidrAndVip) {
  EXPECT_EQ(errorOf(policyWith("  rules: [[[{sourceIps: [\"10.0.0.0/33\"]}]]]\n")),
            "local.yaml:6:26: policies[0].rules[0][0][0].sourceIps[0]: \"10.0.0.0/33\" is not a "
            "CIDR or IP address");
  EXPECT_EQ(errorOf("services:\n- {name: s, namespace: ns, hostname: h, vips: [\"10.0.0.1\"]}\n"),
            "local.yaml:2:48: services[0].vips[0]: \"10.0.0.1\" is not a VIP of the form "
            "network/ip or network/ip/prefix");
  EXPECT_EQ(errorOf("services:\n- {name: s, namespace: ns, hostname: h, vips: [\"/10.0.0\"]}\n"),
            "local.yaml:2:48: services[0].vips[0]: \"/10.0.0\" is not a VIP of the form "
            "network/ip or network/ip/prefix");
  EXPECT_EQ(
      errorOf("services:\n- {name: s, namespace: ns, hostname: h, vips: [\"/10.0.0.0/40\"]}\n"),
      "local.yaml:2:48: services[0].vips[0]: \"/10.0.0.0/40\" is not a VIP of the form "
      "network/ip or network/ip/prefix");
}

TEST(LocalConfigErrors, ServiceKeysAndGateways) {
  EXPECT_EQ(errorOf(workloadWith("  services:\n    nohost: {80: 1}\n")),
            "local.yaml:6:5: workloads[0].services: \"nohost\" is not a namespace/hostname service "
            "key");
  EXPECT_EQ(errorOf(workloadWith("  waypoint: {destination: {ip: 1.2.3.4}}\n")),
            "local.yaml:5:27: workloads[0].waypoint.destination: expected {network, address} or "
            "{namespace, hostname}");
  EXPECT_EQ(errorOf(workloadWith("  waypoint: {destination: {address: 1.2.3.4, port: 1}}\n")),
            "local.yaml:5:46: workloads[0].waypoint.destination.port: unknown key (allowed: "
            "network, address)");
  EXPECT_EQ(errorOf(workloadWith("  waypoint: {hboneMtlsPort: 15008}\n")),
            "local.yaml:5:13: workloads[0].waypoint: missing required key \"destination\"");
  EXPECT_EQ(errorOf(workloadWith("  networkGateway: {destination: {address: nope}}\n")),
            "local.yaml:5:43: workloads[0].networkGateway.destination.address: \"nope\" is not an "
            "IP address");
}

TEST(LocalConfigErrors, DuplicatePrimaryKeys) {
  EXPECT_EQ(errorOf("workloads:\n- {uid: a, name: a, namespace: ns}\n"
                    "- {uid: a, name: b, namespace: ns}\n"),
            "local.yaml:3:9: workloads[1].uid: duplicate uid \"a\" (also at workloads[0])");
  EXPECT_EQ(errorOf("services:\n- {name: a, namespace: ns, hostname: h}\n"
                    "- {name: b, namespace: ns, hostname: h}\n"),
            "local.yaml:3:3: services[1]: duplicate service \"ns/h\" (also at services[0])");
  EXPECT_EQ(errorOf("policies:\n- {name: p, namespace: ns, scope: Global, action: Allow}\n"
                    "- {name: p, namespace: ns, scope: Global, action: Deny}\n"),
            "local.yaml:3:3: policies[1]: duplicate policy \"ns/p\" (also at policies[0])");
}

TEST(LocalConfigErrors, SourceNameIsUsed) {
  auto r = parseLocalConfig("- x\n", "/etc/ztunnel/config.yaml");
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().detail(), "/etc/ztunnel/config.yaml:1:1: expected a map, got a list");
}

TEST(LocalConfigErrors, HostileInputFailsCleanly) {
  // Deep nesting: yaml-cpp's depth guard.
  std::string deep = "workloads: " + std::string(5000, '[');
  EXPECT_TRUE(errorOf(deep).starts_with("local.yaml:")) << errorOf(deep);
  // Alias expansion ("billion laughs") inside a schema-valid shape: 10 rules x 100 clauses x
  // 100 matches x 100 string matches, a few KB of text. Bounded by the node budget.
  auto aliasList = [](std::string first, std::string alias, int n) {
    std::string out = "[" + first;
    for (int i = 1; i < n; ++i) {
      out += ", " + alias;
    }
    return out + "]";
  };
  std::string match = "{namespaces: " + aliasList("&s {Exact: x}", "*s", 100) + "}";
  std::string clause = aliasList("&m " + match, "*m", 100);
  std::string rule = aliasList("&c " + clause, "*c", 100);
  std::string rules = aliasList("&r " + rule, "*r", 10);
  std::string bomb = std::string(kPolicyHead) + "  rules: " + rules + "\n";
  ASSERT_LT(bomb.size(), 8000u);
  ParseLimits limits;
  limits.maxNodes = 100'000;  // keeps the test quick; the default is checked the same way
  auto r = parseLocalConfig(bomb, "local.yaml", limits);
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().detail().find("document too large (more than 100000 nodes)"),
            std::string::npos)
      << r.error().detail();
  // Within the budget the same shape parses: one clause of the bomb is 100 matches x 100
  // string matches.
  std::string small = std::string(kPolicyHead) + "  rules: [[" + clause + "]]\n";
  auto ok = parseLocalConfig(small, "local.yaml", limits);
  ASSERT_TRUE(ok) << ok.error().message();
  EXPECT_EQ(ok->policies[0].rules[0].clauses[0].matches.size(), 100u);
  EXPECT_EQ(ok->policies[0].rules[0].clauses[0].matches[99].namespaces.size(), 100u);
}

TEST(XdsErrc, Category) {
  Error e(XdsErrc::kIo, "open x", ENOENT);
  EXPECT_EQ(e.message(), "xds: reading configuration failed: open x: No such file or directory");
}

TEST(LoadLocalConfigFile, MissingFile) {
  auto r = loadLocalConfigFile("/nonexistent/dir/config.yaml");
  ASSERT_FALSE(r);
  EXPECT_TRUE(r.error().is(XdsErrc::kIo));
  EXPECT_EQ(r.error().sysErrno(), ENOENT);
}

TEST(LoadLocalConfigFile, ReadsTestdata) {
  auto r = loadLocalConfigFile(std::string(ZT_TESTDATA_DIR) + "/local_config/spec_example.yaml");
  ASSERT_TRUE(r) << r.error().message();
  EXPECT_EQ(r->workloads.size(), 1u);
}

}  // namespace
}  // namespace zt::xds
