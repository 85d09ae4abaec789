#include "ztunnel/state/proxy_state.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <map>
#include <set>

#include "test_helpers.h"

namespace zt::state {
namespace {

using testing::drawOf;
using testing::ip;
using testing::makeService;
using testing::makeWorkload;
using testing::SequenceRandom;
using testing::StateBuilder;
using testing::vip;

// ---------------------------------------------------------------------------------------------
// Builder

TEST(Builder, RejectsDuplicatesAndInvalid) {
  ProxyState::Builder b;
  EXPECT_TRUE(b.addWorkload(makeWorkload("u1", "ns", "a", {"10.0.0.1"})));
  auto dup = b.addWorkload(makeWorkload("u1", "ns", "b", {"10.0.0.2"}));
  ASSERT_FALSE(dup);
  EXPECT_TRUE(dup.error().is(StateErrc::kDuplicate));

  auto noUid = b.addWorkload(makeWorkload("", "ns", "a", {}));
  ASSERT_FALSE(noUid);
  EXPECT_TRUE(noUid.error().is(StateErrc::kInvalid));
  auto noNs = b.addWorkload(makeWorkload("u2", "", "a", {}));
  EXPECT_FALSE(noNs);

  auto badKey = makeWorkload("u3", "ns", "a", {});
  badKey.services["nohost"] = {{80, 80}};
  auto st = b.addWorkload(badKey);
  ASSERT_FALSE(st);
  EXPECT_TRUE(st.error().is(StateErrc::kInvalid));

  EXPECT_TRUE(b.addService(makeService("ns", "a.example", {}, {})));
  auto sdup = b.addService(makeService("ns", "a.example", {}, {}));
  ASSERT_FALSE(sdup);
  EXPECT_TRUE(sdup.error().is(StateErrc::kDuplicate));
  EXPECT_FALSE(b.addService(makeService("", "b.example", {}, {})));

  Authorization p;
  p.name = "p";
  p.namespace_ = "ns";
  EXPECT_TRUE(b.addPolicy(p));
  auto pdup = b.addPolicy(p);
  ASSERT_FALSE(pdup);
  EXPECT_TRUE(pdup.error().is(StateErrc::kDuplicate));
  p.name = "";
  EXPECT_FALSE(b.addPolicy(p));
}

TEST(Builder, NormalisesEmptyDefaults) {
  StateOptions opts;
  opts.clusterId = "cluster-7";
  auto w = makeWorkload("u", "ns", "n", {"10.0.0.1"});
  w.serviceAccount.clear();
  w.trustDomain.clear();
  w.clusterId.clear();
  auto explicitCluster = makeWorkload("u2", "ns", "n2", {"10.0.0.2"});
  explicitCluster.clusterId = "other";
  auto state = StateBuilder(opts).add(w).add(explicitCluster).build();
  const Workload* got = state->workloadByUid("u");
  ASSERT_NE(got, nullptr);
  EXPECT_EQ(got->serviceAccount, "default");
  EXPECT_EQ(got->trustDomain, "cluster.local");
  EXPECT_EQ(got->clusterId, "cluster-7");
  EXPECT_EQ(state->workloadByUid("u2")->clusterId, "other");
}

TEST(Builder, VersionAndEmpty) {
  auto empty = ProxyState::empty();
  EXPECT_EQ(empty->version(), 0u);
  EXPECT_TRUE(empty->workloads().empty());
  EXPECT_EQ(empty->options().rootNamespace, "istio-system");
  ProxyState::Builder b;
  b.setVersion(17);
  EXPECT_EQ(std::move(b).build()->version(), 17u);
}

// ---------------------------------------------------------------------------------------------
// Workload lookups

TEST(Workloads, ByUid) {
  auto state = StateBuilder().add(makeWorkload("u1", "ns", "a", {"10.0.0.1"})).build();
  ASSERT_NE(state->workloadByUid("u1"), nullptr);
  EXPECT_EQ(state->workloadByUid("u1")->name, "a");
  EXPECT_EQ(state->workloadByUid("u2"), nullptr);
}

TEST(Workloads, ByAddressIsPerNetwork) {
  auto a = makeWorkload("a", "ns", "a", {"10.0.0.1", "fd00::1"});
  auto b = makeWorkload("b", "ns", "b", {"10.0.0.1"});
  b.network = "net2";
  auto state = StateBuilder().add(a).add(b).build();
  EXPECT_EQ(state->workloadByAddress("", ip("10.0.0.1"))->uid, "a");
  EXPECT_EQ(state->workloadByAddress("", ip("fd00::1"))->uid, "a");
  EXPECT_EQ(state->workloadByAddress("net2", ip("10.0.0.1"))->uid, "b");
  EXPECT_EQ(state->workloadByAddress("net3", ip("10.0.0.1")), nullptr);
  EXPECT_EQ(state->workloadByAddress("", ip("10.0.0.2")), nullptr);
}

TEST(Workloads, ByAddressPrefersPodsThenHbone) {
  // istiod names pods "<cluster>//Pod/<ns>/<name>"; ztunnel checks for "//Pod/" literally.
  auto entry = makeWorkload("cluster/networking.istio.io/WorkloadEntry/ns/we", "ns", "we",
                            {"10.0.0.9"}, TunnelProtocol::kHbone);
  auto podTcp =
      makeWorkload("cluster//Pod/ns/p-tcp", "ns", "p-tcp", {"10.0.0.9"}, TunnelProtocol::kNone);
  auto podHbone = makeWorkload("cluster//Pod/ns/z-hbone", "ns", "z-hbone", {"10.0.0.9"},
                               TunnelProtocol::kHbone);
  auto state = StateBuilder().add(entry).add(podTcp).add(podHbone).build();
  EXPECT_EQ(state->workloadByAddress("", ip("10.0.0.9"))->name, "z-hbone");
  auto all = state->workloadsByAddress("", ip("10.0.0.9"));
  ASSERT_EQ(all.size(), 3u);
  EXPECT_EQ(all[0]->name, "z-hbone");
  EXPECT_EQ(all[1]->name, "p-tcp");
  EXPECT_EQ(all[2]->name, "we");

  // Without pods, HBONE wins over TCP.
  auto tcpEntry =
      makeWorkload("c//x/WorkloadEntry/ns/a", "ns", "a", {"10.0.0.8"}, TunnelProtocol::kNone);
  auto hboneEntry =
      makeWorkload("c//x/WorkloadEntry/ns/b", "ns", "b", {"10.0.0.8"}, TunnelProtocol::kHbone);
  auto state2 = StateBuilder().add(tcpEntry).add(hboneEntry).build();
  EXPECT_EQ(state2->workloadByAddress("", ip("10.0.0.8"))->name, "b");
}

TEST(Workloads, HostNetworkIsNotIndexedByAddress) {
  auto host = makeWorkload("h", "ns", "h", {"192.168.1.10"});
  host.networkMode = NetworkMode::kHostNetwork;
  auto state = StateBuilder().add(host).build();
  EXPECT_EQ(state->workloadByAddress("", ip("192.168.1.10")), nullptr);
  EXPECT_NE(state->workloadByUid("h"), nullptr);
  EXPECT_NE(state->findLocalWorkload("ns", "h"), nullptr);
}

TEST(Workloads, FindLocalWorkload) {
  auto a = makeWorkload("cluster//v1/Pod/ns/app", "ns", "app", {"10.0.0.1"});
  a.serviceAccount = "sa1";
  a.node = "node-a";
  auto other = makeWorkload("cluster//v1/Pod/ns2/app", "ns2", "app", {"10.0.0.2"});
  auto state = StateBuilder().add(a).add(other).build();
  EXPECT_EQ(state->findLocalWorkload("ns", "app", "sa1")->uid, a.uid);
  EXPECT_EQ(state->findLocalWorkload("ns", "app")->uid, a.uid);
  EXPECT_EQ(state->findLocalWorkload("ns", "app", "sa1", "node-a")->uid, a.uid);
  EXPECT_EQ(state->findLocalWorkload("ns", "app", "sa2"), nullptr);
  EXPECT_EQ(state->findLocalWorkload("ns", "app", "sa1", "node-b"), nullptr);
  EXPECT_EQ(state->findLocalWorkload("ns", "nope"), nullptr);
  EXPECT_EQ(state->findLocalWorkload("ns2", "app")->uid, other.uid);
}

// ---------------------------------------------------------------------------------------------
// Service lookups

TEST(Services, ByKeyAndExactVip) {
  auto svc = makeService("ns", "a.ns.svc",
                         {vip("", "10.96.0.1"), vip("net2", "10.96.0.2"), vip("", "fd00:96::1")},
                         {{80, 8080}});
  auto state = StateBuilder().add(svc).build();
  EXPECT_EQ(state->serviceByKey("ns/a.ns.svc")->hostname, "a.ns.svc");
  EXPECT_EQ(state->serviceByKey("ns/b"), nullptr);
  EXPECT_EQ(state->serviceByVip("", ip("10.96.0.1"))->hostname, "a.ns.svc");
  EXPECT_EQ(state->serviceByVip("", ip("fd00:96::1"))->hostname, "a.ns.svc");
  EXPECT_EQ(state->serviceByVip("net2", ip("10.96.0.2"))->hostname, "a.ns.svc");
  EXPECT_EQ(state->serviceByVip("", ip("10.96.0.2")), nullptr);  // other network
  EXPECT_EQ(state->serviceByVip("", ip("10.96.0.3")), nullptr);
}

TEST(Services, CidrVipLongestPrefixAndExactFirst) {
  auto wide = makeService("ns", "wide", {vip("", "10.0.0.0", 8)}, {});
  auto narrow = makeService("ns", "narrow", {vip("", "10.1.0.0", 16)}, {});
  auto exact = makeService("ns", "exact", {vip("", "10.1.2.3")}, {});
  auto v6 = makeService("ns", "v6", {vip("", "fd00::", 64)}, {});
  auto state = StateBuilder().add(wide).add(narrow).add(exact).add(v6).build();
  EXPECT_EQ(state->serviceByVip("", ip("10.1.2.3"))->hostname, "exact");
  EXPECT_EQ(state->serviceByVip("", ip("10.1.2.4"))->hostname, "narrow");
  EXPECT_EQ(state->serviceByVip("", ip("10.2.0.1"))->hostname, "wide");
  EXPECT_EQ(state->serviceByVip("", ip("11.0.0.1")), nullptr);
  EXPECT_EQ(state->serviceByVip("", ip("fd00::77"))->hostname, "v6");
  EXPECT_EQ(state->serviceByVip("", ip("fd01::77")), nullptr);
  EXPECT_EQ(state->serviceByVip("other", ip("10.2.0.1")), nullptr);
}

TEST(Services, CidrTieBreaksClientNamespaceBeforePrefixThenCanonical) {
  auto theirsNarrow = makeService("theirs", "narrow", {vip("", "10.1.0.0", 16)}, {});
  auto mineWide = makeService("mine", "wide", {vip("", "10.0.0.0", 8)}, {});
  auto canon = makeService("third", "canon", {vip("", "10.1.0.0", 16)}, {});
  canon.canonical = true;
  auto state = StateBuilder().add(theirsNarrow).add(mineWide).add(canon).build();
  // In the client's namespace beats a longer prefix elsewhere.
  EXPECT_EQ(state->serviceByVip("", ip("10.1.0.5"), "mine")->hostname, "wide");
  // Otherwise the longest prefix, then canonical.
  EXPECT_EQ(state->serviceByVip("", ip("10.1.0.5"), "elsewhere")->hostname, "canon");
  EXPECT_EQ(state->serviceByVip("", ip("10.1.0.5"))->hostname, "canon");
}

TEST(Services, VipTieBreaks) {
  auto a = makeService("a", "h", {vip("", "10.9.0.1")}, {});
  auto b = makeService("b", "h", {vip("", "10.9.0.1")}, {});
  auto c = makeService("c", "h", {vip("", "10.9.0.1")}, {});
  c.canonical = true;
  auto state = StateBuilder().add(a).add(b).add(c).build();
  EXPECT_EQ(state->serviceByVip("", ip("10.9.0.1"), "b")->namespace_, "b");  // client namespace
  EXPECT_EQ(state->serviceByVip("", ip("10.9.0.1"), "z")->namespace_, "c");  // canonical
  EXPECT_EQ(state->serviceByVip("", ip("10.9.0.1"))->namespace_, "c");

  StateOptions opts;
  opts.preferredServiceNamespace = "b";
  auto state2 = StateBuilder(opts).add(a).add(b).build();
  EXPECT_EQ(state2->serviceByVip("", ip("10.9.0.1"), "z")->namespace_, "b");  // preferred ns
  auto state3 = StateBuilder().add(b).add(a).build();
  EXPECT_EQ(state3->serviceByVip("", ip("10.9.0.1"), "z")->namespace_, "a");  // lowest key
}

TEST(Services, VisibilityFiltersOtherNamespaces) {
  auto priv = makeService("a", "h", {vip("", "10.9.0.1")}, {});
  priv.visibility = ServiceVisibility::kNamespace;
  auto state = StateBuilder().add(priv).build();
  EXPECT_EQ(state->serviceByVip("", ip("10.9.0.1"), "b"), nullptr);
  EXPECT_NE(state->serviceByVip("", ip("10.9.0.1"), "a"), nullptr);
  EXPECT_NE(state->serviceByVip("", ip("10.9.0.1")), nullptr);  // unknown client

  // A hidden exact VIP falls through to a visible CIDR VIP.
  auto cidr = makeService("b", "range", {vip("", "10.9.0.0", 24)}, {});
  auto state2 = StateBuilder().add(priv).add(cidr).build();
  EXPECT_EQ(state2->serviceByVip("", ip("10.9.0.1"), "b")->hostname, "range");
  EXPECT_EQ(state2->serviceByVip("", ip("10.9.0.1"), "a")->hostname, "h");
}

TEST(Services, ByHostname) {
  auto a = makeService("a", "shared.example", {}, {});
  auto b = makeService("b", "shared.example", {}, {});
  auto state = StateBuilder().add(a).add(b).build();
  EXPECT_EQ(state->serviceByHostname("shared.example", "b")->namespace_, "b");
  EXPECT_EQ(state->serviceByHostname("shared.example", "z")->namespace_, "a");
  EXPECT_EQ(state->serviceByHostname("nope.example"), nullptr);
}

TEST(Services, EndpointsOf) {
  auto svc = makeService("ns", "s", {vip("", "10.96.0.1")}, {{80, 8080}});
  auto w1 = makeWorkload("w1", "ns", "w1", {"10.0.0.1"});
  w1.services["ns/s"] = {{80, 9090}};
  auto w2 = makeWorkload("w2", "ns", "w2", {"10.0.0.2"});
  w2.services["ns/s"] = {};
  w2.services["ns/missing"] = {{1, 1}};
  auto w3 = makeWorkload("w3", "ns", "w3", {"10.0.0.3"});
  auto state = StateBuilder().add(svc).add(w1).add(w2).add(w3).build();
  const auto& eps = state->endpointsOf(*state->serviceByKey("ns/s"));
  ASSERT_EQ(eps.size(), 2u);
  EXPECT_EQ(eps[0].workload->uid, "w1");
  EXPECT_EQ(eps[0].ports->at(80), 9090);
  EXPECT_EQ(eps[1].workload->uid, "w2");
  // A copy of the service from elsewhere is matched by key.
  Service copy = svc;
  EXPECT_EQ(state->endpointsOf(copy).size(), 2u);
  EXPECT_TRUE(state->endpointsOf(makeService("ns", "other", {}, {})).empty());
}

// ---------------------------------------------------------------------------------------------
// pickEndpoint

class PickEndpoint : public ::testing::Test {
 protected:
  static Workload endpoint(std::string name, std::vector<std::string> ips, PortMap ports = {}) {
    auto w = makeWorkload("cluster//v1/Pod/ns/" + name, "ns", name, std::move(ips));
    w.services["ns/svc"] = std::move(ports);
    return w;
  }
  static Service svc(PortMap ports = {{80, 8080}}) {
    return makeService("ns", "svc", {vip("", "10.96.0.1"), vip("", "fd00:96::1")},
                       std::move(ports));
  }
  FastRandom rng_{1234};
};

TEST_F(PickEndpoint, UsesServiceTargetPort) {
  auto state = StateBuilder().add(svc()).add(endpoint("a", {"10.0.0.1"})).build();
  auto up = state->pickEndpoint(*state->serviceByKey("ns/svc"), 80, nullptr, rng_);
  ASSERT_TRUE(up) << up.error().message();
  EXPECT_EQ(up->kind, Upstream::Kind::kWorkloadIp);
  EXPECT_EQ(up->workload->name, "a");
  EXPECT_EQ(up->address.toString(), "10.0.0.1:8080");
  EXPECT_EQ(up->targetPort, 8080);
}

TEST_F(PickEndpoint, EndpointMappingOverridesServiceTargetPort) {
  auto state = StateBuilder().add(svc()).add(endpoint("a", {"10.0.0.1"}, {{80, 9999}})).build();
  auto up = state->pickEndpoint(*state->serviceByKey("ns/svc"), 80, nullptr, rng_);
  ASSERT_TRUE(up);
  EXPECT_EQ(up->address.toString(), "10.0.0.1:9999");
}

TEST_F(PickEndpoint, NamedPortNeedsEndpointMapping) {
  // Service target port 0 (named port): only endpoints with their own mapping qualify.
  auto state = StateBuilder()
                   .add(svc({{80, 0}}))
                   .add(endpoint("unmapped", {"10.0.0.1"}))
                   .add(endpoint("mapped", {"10.0.0.2"}, {{80, 7070}}))
                   .build();
  for (int i = 0; i < 20; ++i) {
    auto up = state->pickEndpoint(*state->serviceByKey("ns/svc"), 80, nullptr, rng_);
    ASSERT_TRUE(up);
    EXPECT_EQ(up->workload->name, "mapped");
    EXPECT_EQ(up->address.port(), 7070);
  }
  auto only = StateBuilder().add(svc({{80, 0}})).add(endpoint("unmapped", {"10.0.0.1"})).build();
  auto err = only->pickEndpoint(*only->serviceByKey("ns/svc"), 80, nullptr, rng_);
  ASSERT_FALSE(err);
  EXPECT_TRUE(err.error().is(StateErrc::kNoHealthyUpstream));
}

TEST_F(PickEndpoint, PortUnknownToServiceButMappedByEndpoint) {
  auto state =
      StateBuilder().add(svc({{80, 8080}})).add(endpoint("a", {"10.0.0.1"}, {{81, 8181}})).build();
  auto up = state->pickEndpoint(*state->serviceByKey("ns/svc"), 81, nullptr, rng_);
  ASSERT_TRUE(up);
  EXPECT_EQ(up->address.port(), 8181);
  auto none = state->pickEndpoint(*state->serviceByKey("ns/svc"), 82, nullptr, rng_);
  ASSERT_FALSE(none);
  EXPECT_TRUE(none.error().is(StateErrc::kNoHealthyUpstream));
}

TEST_F(PickEndpoint, NoEndpointsIsNoHealthyUpstream) {
  auto state = StateBuilder().add(svc()).build();
  auto up = state->pickEndpoint(*state->serviceByKey("ns/svc"), 80, nullptr, rng_);
  ASSERT_FALSE(up);
  EXPECT_TRUE(up.error().is(StateErrc::kNoHealthyUpstream));
  EXPECT_EQ(up.error().message(), "state: no healthy upstream: ns/svc");
}

TEST_F(PickEndpoint, UnhealthyExcludedUnlessAllowAll) {
  auto sick = endpoint("sick", {"10.0.0.1"});
  sick.status = HealthStatus::kUnhealthy;
  auto state = StateBuilder().add(svc()).add(sick).build();
  EXPECT_FALSE(state->pickEndpoint(*state->serviceByKey("ns/svc"), 80, nullptr, rng_));

  auto lenient = svc();
  lenient.loadBalancing = LoadBalancing{{}, LbMode::kStandard, LbHealthPolicy::kAllowAll};
  auto state2 = StateBuilder().add(lenient).add(sick).build();
  auto up = state2->pickEndpoint(*state2->serviceByKey("ns/svc"), 80, nullptr, rng_);
  ASSERT_TRUE(up);
  EXPECT_EQ(up->workload->name, "sick");

  // Healthy and unhealthy: only the healthy one is ever picked.
  auto state3 = StateBuilder().add(svc()).add(sick).add(endpoint("ok", {"10.0.0.2"})).build();
  for (int i = 0; i < 50; ++i) {
    EXPECT_EQ(
        state3->pickEndpoint(*state3->serviceByKey("ns/svc"), 80, nullptr, rng_)->workload->name,
        "ok");
  }
}

TEST_F(PickEndpoint, PassthroughSignalsOriginalDestination) {
  auto pass = svc();
  pass.loadBalancing = LoadBalancing{{}, LbMode::kPassthrough, LbHealthPolicy::kOnlyHealthy};
  auto state = StateBuilder().add(pass).add(endpoint("a", {"10.0.0.1"})).build();
  EndpointQuery q;
  q.servicePort = 80;
  q.originalDestination = ip("10.96.0.1");
  auto up = state->pickEndpoint(*state->serviceByKey("ns/svc"), q, rng_);
  ASSERT_TRUE(up);
  EXPECT_EQ(up->kind, Upstream::Kind::kPassthrough);
  EXPECT_EQ(up->workload, nullptr);
  EXPECT_EQ(up->address.toString(), "10.96.0.1:80");
  // Even without endpoints.
  auto empty = StateBuilder().add(pass).build();
  auto up2 = empty->pickEndpoint(*empty->serviceByKey("ns/svc"), q, rng_);
  ASSERT_TRUE(up2);
  EXPECT_EQ(up2->kind, Upstream::Kind::kPassthrough);
}

TEST_F(PickEndpoint, HostnameAndGatewayEndpoints) {
  auto dns = endpoint("dns", {});
  dns.hostname = "db.example.com";
  auto state = StateBuilder().add(svc()).add(dns).build();
  auto up = state->pickEndpoint(*state->serviceByKey("ns/svc"), 80, nullptr, rng_);
  ASSERT_TRUE(up);
  EXPECT_EQ(up->kind, Upstream::Kind::kHostname);
  EXPECT_EQ(up->targetPort, 8080);
  EXPECT_EQ(up->workload->hostname, "db.example.com");

  // IP-less on a remote network with a gateway: reachable through it.
  auto remote = endpoint("remote", {});
  remote.network = "net2";
  remote.networkGateway = GatewayAddress{NetworkAddress{"net2", ip("172.16.0.1")}, 15008};
  auto state2 = StateBuilder().add(svc()).add(remote).build();
  auto up2 = state2->pickEndpoint(*state2->serviceByKey("ns/svc"), 80, nullptr, rng_);
  ASSERT_TRUE(up2);
  EXPECT_EQ(up2->kind, Upstream::Kind::kNetworkGateway);
  EXPECT_EQ(up2->targetPort, 8080);

  // IP-less on our own network (even with a gateway) or without a gateway: never used.
  auto local = remote;
  local.network = "";
  auto noGw = endpoint("nogw", {});
  noGw.network = "net2";
  auto state3 = StateBuilder().add(svc()).add(local).add(noGw).build();
  EXPECT_FALSE(state3->pickEndpoint(*state3->serviceByKey("ns/svc"), 80, nullptr, rng_));

  // The source's network decides what "remote" means.
  auto src = makeWorkload("src", "ns", "src", {"10.0.0.50"});
  src.network = "net2";
  auto state4 = StateBuilder().add(svc()).add(remote).add(src).build();
  EXPECT_FALSE(state4->pickEndpoint(*state4->serviceByKey("ns/svc"), 80,
                                    state4->workloadByUid("src"), rng_));
  StateOptions opts;
  opts.network = "net2";
  auto state5 = StateBuilder(opts).add(svc()).add(remote).build();
  EXPECT_FALSE(state5->pickEndpoint(*state5->serviceByKey("ns/svc"), 80, nullptr, rng_));
}

TEST_F(PickEndpoint, DualStackIpChoice) {
  auto state =
      StateBuilder().add(svc()).add(endpoint("dual", {"10.0.0.1", "fd00::1", "fd00::2"})).build();
  const Service& s = *state->serviceByKey("ns/svc");
  EndpointQuery q;
  q.servicePort = 80;
  q.originalDestination = ip("fd00:96::1");
  EXPECT_EQ(state->pickEndpoint(s, q, rng_)->address.toString(), "[fd00::1]:8080");
  q.originalDestination = ip("10.96.0.1");
  EXPECT_EQ(state->pickEndpoint(s, q, rng_)->address.toString(), "10.0.0.1:8080");
  q.originalDestination = ip("fd00::2");  // the client dialed one of the workload's own IPs
  EXPECT_EQ(state->pickEndpoint(s, q, rng_)->address.toString(), "[fd00::2]:8080");
  q.originalDestination.reset();
  EXPECT_EQ(state->pickEndpoint(s, q, rng_)->address.toString(), "10.0.0.1:8080");

  auto v6only = svc();
  v6only.ipFamilies = IpFamilies::kIpv6Only;
  auto state2 = StateBuilder()
                    .add(v6only)
                    .add(endpoint("dual", {"10.0.0.1", "fd00::1"}))
                    .add(endpoint("v4", {"10.0.0.2"}))
                    .build();
  q.originalDestination = ip("10.96.0.1");
  for (int i = 0; i < 20; ++i) {
    auto up = state2->pickEndpoint(*state2->serviceByKey("ns/svc"), q, rng_);
    ASSERT_TRUE(up);
    EXPECT_EQ(up->address.toString(), "[fd00::1]:8080");  // v4-only endpoint is not a candidate
  }
}

TEST_F(PickEndpoint, DeterministicWeightedChoice) {
  auto a = endpoint("a", {"10.0.0.1"});
  a.capacity = 1;
  auto b = endpoint("b", {"10.0.0.2"});
  b.capacity = 2;
  auto c = endpoint("c", {"10.0.0.3"});
  c.capacity = 0;  // never chosen
  auto d = endpoint("d", {"10.0.0.4"});
  d.capacity = 1;
  auto state = StateBuilder().add(svc()).add(a).add(b).add(c).add(d).build();
  const Service& s = *state->serviceByKey("ns/svc");
  // Total weight 4: draws 0 → a, 1..2 → b, 3 → d.
  const std::map<uint64_t, std::string> expected = {{0, "a"}, {1, "b"}, {2, "b"}, {3, "d"}};
  for (const auto& [draw, name] : expected) {
    SequenceRandom r({drawOf(draw, 4)});
    auto up = state->pickEndpoint(s, 80, nullptr, r);
    ASSERT_TRUE(up);
    EXPECT_EQ(up->workload->name, name) << "draw " << draw;
  }
}

TEST_F(PickEndpoint, WeightedSelectionStatistics) {
  auto a = endpoint("a", {"10.0.0.1"});
  a.capacity = 1;
  auto b = endpoint("b", {"10.0.0.2"});
  b.capacity = 3;
  auto c = endpoint("c", {"10.0.0.3"});
  c.capacity = 6;
  auto state = StateBuilder().add(svc()).add(a).add(b).add(c).build();
  const Service& s = *state->serviceByKey("ns/svc");
  std::map<std::string, int> counts;
  constexpr int kDraws = 50000;
  FastRandom r(99);
  for (int i = 0; i < kDraws; ++i) {
    ++counts[state->pickEndpoint(s, 80, nullptr, r)->workload->name];
  }
  // Expected shares 10% / 30% / 60%; allow ±2 percentage points.
  EXPECT_NEAR(counts["a"], kDraws * 0.1, kDraws * 0.02);
  EXPECT_NEAR(counts["b"], kDraws * 0.3, kDraws * 0.02);
  EXPECT_NEAR(counts["c"], kDraws * 0.6, kDraws * 0.02);
}

TEST_F(PickEndpoint, AllZeroCapacityIsNoHealthyUpstream) {
  auto a = endpoint("a", {"10.0.0.1"});
  a.capacity = 0;
  auto state = StateBuilder().add(svc()).add(a).build();
  auto up = state->pickEndpoint(*state->serviceByKey("ns/svc"), 80, nullptr, rng_);
  ASSERT_FALSE(up);
  EXPECT_TRUE(up.error().is(StateErrc::kNoHealthyUpstream));
}

// Locality-aware load balancing.
class LocalityLb : public PickEndpoint {
 protected:
  static Workload at(std::string name, std::string region, std::string zone,
                     std::string node = "n1", std::string network = "",
                     std::string cluster = "Kubernetes") {
    auto w = endpoint(std::move(name), {"10.0.0.1"});
    w.locality = Locality{std::move(region), std::move(zone), ""};
    w.node = std::move(node);
    w.network = std::move(network);
    w.clusterId = std::move(cluster);
    return w;
  }
  static Service lbSvc(LbMode mode, std::vector<LbScope> prefs) {
    auto s = svc();
    s.loadBalancing = LoadBalancing{std::move(prefs), mode, LbHealthPolicy::kOnlyHealthy};
    return s;
  }
  // The set of endpoint names picked over many draws.
  std::set<std::string> picks(const ProxyState& state, const Workload* source) {
    std::set<std::string> out;
    for (int i = 0; i < 200; ++i) {
      auto up = state.pickEndpoint(*state.serviceByKey("ns/svc"), 80, source, rng_);
      if (!up) {
        out.insert("<" + std::string(up.error().category().describe(up.error().code())) + ">");
        continue;
      }
      out.insert(up->workload->name);
    }
    return out;
  }
};

TEST_F(LocalityLb, FailoverPrefersBestRank) {
  auto src = at("src", "eu", "eu-1");
  src.uid = "src";
  src.services.clear();
  auto state = StateBuilder()
                   .add(lbSvc(LbMode::kFailover, {LbScope::kRegion, LbScope::kZone}))
                   .add(src)
                   .add(at("same-zone", "eu", "eu-1"))
                   .add(at("same-region", "eu", "eu-2"))
                   .add(at("far", "us", "us-1"))
                   .build();
  const Workload* source = state->workloadByUid("src");
  EXPECT_EQ(picks(*state, source), std::set<std::string>{"same-zone"});
  // Without a source, ranking does not apply.
  EXPECT_EQ(picks(*state, nullptr), (std::set<std::string>{"same-zone", "same-region", "far"}));
}

TEST_F(LocalityLb, FailoverFallsBackWhenBestIsGone) {
  auto src = at("src", "eu", "eu-1");
  src.uid = "src";
  src.services.clear();
  auto sameZone = at("same-zone", "eu", "eu-1");
  sameZone.status = HealthStatus::kUnhealthy;
  auto state = StateBuilder()
                   .add(lbSvc(LbMode::kFailover, {LbScope::kRegion, LbScope::kZone}))
                   .add(src)
                   .add(sameZone)
                   .add(at("same-region-1", "eu", "eu-2"))
                   .add(at("same-region-2", "eu", "eu-3"))
                   .add(at("far", "us", "us-1"))
                   .build();
  EXPECT_EQ(picks(*state, state->workloadByUid("src")),
            (std::set<std::string>{"same-region-1", "same-region-2"}));
}

TEST_F(LocalityLb, RankingStopsAtFirstMismatch) {
  // Zone strings equal but region differs: the zone match does not count.
  auto src = at("src", "eu", "z1");
  src.uid = "src";
  src.services.clear();
  auto state = StateBuilder()
                   .add(lbSvc(LbMode::kFailover, {LbScope::kRegion, LbScope::kZone}))
                   .add(src)
                   .add(at("other-region-same-zone-name", "us", "z1"))
                   .add(at("other-region", "ap", "z9"))
                   .build();
  EXPECT_EQ(picks(*state, state->workloadByUid("src")),
            (std::set<std::string>{"other-region-same-zone-name", "other-region"}));
}

TEST_F(LocalityLb, StrictDropsPartialMatches) {
  auto src = at("src", "eu", "eu-1");
  src.uid = "src";
  src.services.clear();
  auto state = StateBuilder()
                   .add(lbSvc(LbMode::kStrict, {LbScope::kRegion, LbScope::kZone}))
                   .add(src)
                   .add(at("same-zone", "eu", "eu-1"))
                   .add(at("same-region", "eu", "eu-2"))
                   .build();
  EXPECT_EQ(picks(*state, state->workloadByUid("src")), std::set<std::string>{"same-zone"});

  auto state2 = StateBuilder()
                    .add(lbSvc(LbMode::kStrict, {LbScope::kRegion, LbScope::kZone}))
                    .add(src)
                    .add(at("same-region", "eu", "eu-2"))
                    .build();
  EXPECT_EQ(picks(*state2, state2->workloadByUid("src")),
            std::set<std::string>{"<no healthy upstream>"});
}

TEST_F(LocalityLb, NodeAndClusterScopes) {
  auto src = at("src", "eu", "eu-1", "node-a", "", "c1");
  src.uid = "src";
  src.services.clear();
  auto state = StateBuilder()
                   .add(lbSvc(LbMode::kStrict, {LbScope::kCluster, LbScope::kNode}))
                   .add(src)
                   .add(at("same-node", "x", "y", "node-a", "", "c1"))
                   .add(at("other-node", "x", "y", "node-b", "", "c1"))
                   .add(at("other-cluster", "x", "y", "node-a", "", "c2"))
                   .build();
  EXPECT_EQ(picks(*state, state->workloadByUid("src")), std::set<std::string>{"same-node"});
  auto state2 = StateBuilder()
                    .add(lbSvc(LbMode::kStrict, {LbScope::kCluster}))
                    .add(src)
                    .add(at("same-node", "x", "y", "node-a", "", "c1"))
                    .add(at("other-node", "x", "y", "node-b", "", "c1"))
                    .add(at("other-cluster", "x", "y", "node-a", "", "c2"))
                    .build();
  EXPECT_EQ(picks(*state2, state2->workloadByUid("src")),
            (std::set<std::string>{"same-node", "other-node"}));
}

TEST_F(LocalityLb, NetworkFirstIsPreferredNotRequired) {
  auto src = at("src", "eu", "eu-1", "n1", "net1");
  src.uid = "src";
  src.services.clear();
  // Same network wins even with a worse locality.
  auto state = StateBuilder()
                   .add(lbSvc(LbMode::kFailover, {LbScope::kNetwork, LbScope::kRegion}))
                   .add(src)
                   .add(at("same-net-far", "us", "us-1", "n1", "net1"))
                   .add(at("other-net-near", "eu", "eu-1", "n1", "net2"))
                   .build();
  EXPECT_EQ(picks(*state, state->workloadByUid("src")), std::set<std::string>{"same-net-far"});
  // STRICT still requires the scopes after NETWORK: the far same-network endpoint is dropped.
  auto strict = StateBuilder()
                    .add(lbSvc(LbMode::kStrict, {LbScope::kNetwork, LbScope::kRegion}))
                    .add(src)
                    .add(at("same-net-far", "us", "us-1", "n1", "net1"))
                    .add(at("same-net-near", "eu", "eu-2", "n1", "net1"))
                    .add(at("other-net-near", "eu", "eu-1", "n1", "net2"))
                    .build();
  EXPECT_EQ(picks(*strict, strict->workloadByUid("src")), std::set<std::string>{"same-net-near"});
  // With no same-network endpoint, other networks are still used (ranked on the rest, STRICT
  // requiring the rest).
  auto state2 = StateBuilder()
                    .add(lbSvc(LbMode::kStrict, {LbScope::kNetwork, LbScope::kRegion}))
                    .add(src)
                    .add(at("other-net-near", "eu", "eu-1", "n1", "net2"))
                    .add(at("other-net-far", "us", "us-1", "n1", "net3"))
                    .build();
  EXPECT_EQ(picks(*state2, state2->workloadByUid("src")), std::set<std::string>{"other-net-near"});
  auto state3 = StateBuilder()
                    .add(lbSvc(LbMode::kFailover, {LbScope::kNetwork, LbScope::kRegion}))
                    .add(src)
                    .add(at("other-net-far", "us", "us-1", "n1", "net3"))
                    .build();
  EXPECT_EQ(picks(*state3, state3->workloadByUid("src")), std::set<std::string>{"other-net-far"});
}

TEST_F(LocalityLb, NetworkNotFirstIsARequiredScope) {
  auto src = at("src", "eu", "eu-1", "n1", "net1");
  src.uid = "src";
  src.services.clear();
  auto state = StateBuilder()
                   .add(lbSvc(LbMode::kStrict, {LbScope::kRegion, LbScope::kNetwork}))
                   .add(src)
                   .add(at("same-region-other-net", "eu", "eu-1", "n1", "net2"))
                   .build();
  EXPECT_EQ(picks(*state, state->workloadByUid("src")),
            std::set<std::string>{"<no healthy upstream>"});
}

TEST_F(PickEndpoint, WaypointLookupAcceptsAppTunnelWithoutPort) {
  auto wp = endpoint("wp", {"10.0.0.7"});
  wp.applicationTunnel = ApplicationTunnel{AppTunnelProtocol::kProxy, 15088};
  auto state = StateBuilder().add(svc({})).add(wp).build();
  const Service& s = *state->serviceByKey("ns/svc");
  EndpointQuery q;
  q.servicePort = 15008;
  EXPECT_FALSE(state->pickEndpoint(s, q, rng_));
  q.waypointLookup = true;
  auto up = state->pickEndpoint(s, q, rng_);
  ASSERT_TRUE(up);
  EXPECT_EQ(up->address.toString(), "10.0.0.7:15008");
}

TEST_F(PickEndpoint, ServiceFromAnotherSnapshot) {
  auto state = StateBuilder().add(svc()).add(endpoint("a", {"10.0.0.1"})).build();
  Service copy = svc();
  auto up = state->pickEndpoint(copy, 80, nullptr, rng_);
  ASSERT_TRUE(up);
  EXPECT_EQ(up->workload->name, "a");
}

// ---------------------------------------------------------------------------------------------
// Waypoints and gateways

TEST(Waypoints, PickWaypointByWeight) {
  Service s = makeService("ns", "s", {}, {});
  FastRandom rng(5);
  EXPECT_EQ(ProxyState::pickWaypoint(s, rng), nullptr);
  s.waypoint = GatewayAddress{NamespacedHostname{"ns", "wp"}, 15008};
  EXPECT_EQ(ProxyState::pickWaypoint(s, rng), &*s.waypoint);
  s.weightedWaypoints = {{GatewayAddress{NamespacedHostname{"ns", "w1"}, 15008}, 0},
                         {GatewayAddress{NamespacedHostname{"ns", "w2"}, 15008}, 0}};
  EXPECT_EQ(ProxyState::pickWaypoint(s, rng), &*s.waypoint);  // all zero ⇒ fallback
  s.weightedWaypoints[0].weight = 1;
  s.weightedWaypoints[1].weight = 3;
  SequenceRandom first({drawOf(0, 4)});
  EXPECT_EQ(ProxyState::pickWaypoint(s, first)->hostname()->hostname, "w1");
  SequenceRandom second({drawOf(1, 4)});
  EXPECT_EQ(ProxyState::pickWaypoint(s, second)->hostname()->hostname, "w2");
  int w1 = 0;
  for (int i = 0; i < 20000; ++i) {
    w1 += ProxyState::pickWaypoint(s, rng)->hostname()->hostname == "w1";
  }
  EXPECT_NEAR(w1, 5000, 600);
}

TEST(Waypoints, ResolveGateway) {
  auto wpSvc = makeService("istio-system", "waypoint.istio-system.svc", {vip("", "10.96.9.9")},
                           {{15008, 15008}});
  auto wp = makeWorkload("cluster//v1/Pod/istio-system/waypoint", "istio-system", "waypoint",
                         {"10.0.9.1"});
  wp.services[wpSvc.key()] = {};
  auto gw = makeWorkload("cluster//v1/Pod/istio-system/ew", "istio-system", "ew", {"172.16.0.1"});
  gw.network = "net2";
  auto state = StateBuilder().add(wpSvc).add(wp).add(gw).build();
  FastRandom rng(1);

  // By address of a workload.
  auto t1 = state->resolveGateway(GatewayAddress{NetworkAddress{"net2", ip("172.16.0.1")}, 15009},
                                  nullptr, std::nullopt, rng);
  ASSERT_TRUE(t1) << t1.error().message();
  EXPECT_EQ(t1->workload->name, "ew");
  EXPECT_EQ(t1->service, nullptr);
  EXPECT_EQ(t1->address.toString(), "172.16.0.1:15009");

  // By address of a service VIP: load-balanced.
  auto t2 = state->resolveGateway(GatewayAddress{NetworkAddress{"", ip("10.96.9.9")}, 15008},
                                  nullptr, std::nullopt, rng);
  ASSERT_TRUE(t2) << t2.error().message();
  EXPECT_EQ(t2->workload->name, "waypoint");
  EXPECT_EQ(t2->service->hostname, "waypoint.istio-system.svc");
  EXPECT_EQ(t2->address.toString(), "10.0.9.1:15008");

  // By hostname.
  auto t3 = state->resolveGateway(
      GatewayAddress{NamespacedHostname{"istio-system", "waypoint.istio-system.svc"}, 15008},
      nullptr, std::nullopt, rng);
  ASSERT_TRUE(t3);
  EXPECT_EQ(t3->workload->name, "waypoint");

  // Unknown.
  auto t4 = state->resolveGateway(GatewayAddress{NamespacedHostname{"x", "y"}, 15008}, nullptr,
                                  std::nullopt, rng);
  ASSERT_FALSE(t4);
  EXPECT_TRUE(t4.error().is(StateErrc::kUnknownWaypoint));
  auto t5 = state->resolveGateway(GatewayAddress{NetworkAddress{"", ip("10.1.1.1")}, 15008},
                                  nullptr, std::nullopt, rng);
  ASSERT_FALSE(t5);
  EXPECT_TRUE(t5.error().is(StateErrc::kUnknownWaypoint));
}

// ---------------------------------------------------------------------------------------------
// Policies

Authorization policy(std::string ns, std::string name, PolicyScope scope) {
  Authorization p;
  p.namespace_ = std::move(ns);
  p.name = std::move(name);
  p.scope = scope;
  return p;
}

std::vector<std::string> keys(const std::vector<const Authorization*>& ps) {
  std::vector<std::string> out;
  for (const auto* p : ps) {
    out.push_back(p->key());
  }
  std::sort(out.begin(), out.end());
  return out;
}

TEST(Policies, ApplicableSet) {
  auto dst = makeWorkload("d", "apps", "d", {"10.0.0.1"});
  dst.authorizationPolicies = {"apps/selected", "apps/selected",
                               "apps/missing",  "other/selected-elsewhere",
                               "apps/ns-wide",  "other/ns-other"};
  auto state = StateBuilder()
                   .add(dst)
                   .add(policy("istio-system", "global", PolicyScope::kGlobal))
                   .add(policy("anywhere", "global2", PolicyScope::kGlobal))
                   .add(policy("istio-system", "root-ns", PolicyScope::kNamespace))
                   .add(policy("apps", "ns-wide", PolicyScope::kNamespace))
                   .add(policy("other", "ns-other", PolicyScope::kNamespace))
                   .add(policy("apps", "selected", PolicyScope::kWorkloadSelector))
                   .add(policy("apps", "not-selected", PolicyScope::kWorkloadSelector))
                   .add(policy("other", "selected-elsewhere", PolicyScope::kWorkloadSelector))
                   .build();
  auto got = state->policiesFor(*state->workloadByUid("d"));
  EXPECT_EQ(keys(got),
            (std::vector<std::string>{"anywhere/global2", "apps/ns-wide", "apps/selected",
                                      "istio-system/global", "istio-system/root-ns",
                                      "other/ns-other", "other/selected-elsewhere"}));
  EXPECT_EQ(got.size(), 7u);  // each once

  // Another namespace sees only the global ones (and root-namespace ones).
  auto other = makeWorkload("o", "elsewhere", "o", {});
  auto state2 = StateBuilder()
                    .add(other)
                    .add(policy("istio-system", "root-ns", PolicyScope::kNamespace))
                    .add(policy("apps", "ns-wide", PolicyScope::kNamespace))
                    .add(policy("apps", "selected", PolicyScope::kWorkloadSelector))
                    .build();
  EXPECT_EQ(keys(state2->policiesFor(*state2->workloadByUid("o"))),
            std::vector<std::string>{"istio-system/root-ns"});

  // A workload in the root namespace does not get root-namespace policies twice.
  auto rootWl = makeWorkload("r", "istio-system", "r", {});
  auto state3 = StateBuilder()
                    .add(rootWl)
                    .add(policy("istio-system", "root-ns", PolicyScope::kNamespace))
                    .build();
  EXPECT_EQ(state3->policiesFor(*state3->workloadByUid("r")).size(), 1u);
}

TEST(Policies, ForEachPolicyForMatchesPoliciesForSplitByKind) {
  auto dst = makeWorkload("d", "apps", "d", {});
  dst.authorizationPolicies = {"apps/sel-deny", "apps/sel-allow-dry", "apps/sel-deny",
                               "apps/missing", "apps/ns-allow"};
  auto withKind = [](Authorization p, PolicyAction a, bool dry) {
    p.action = a;
    p.dryRun = dry;
    return p;
  };
  auto state = StateBuilder()
                   .add(dst)
                   .add(withKind(policy("istio-system", "g-deny", PolicyScope::kGlobal),
                                 PolicyAction::kDeny, false))
                   .add(withKind(policy("istio-system", "g-allow-dry", PolicyScope::kGlobal),
                                 PolicyAction::kAllow, true))
                   .add(withKind(policy("apps", "ns-allow", PolicyScope::kNamespace),
                                 PolicyAction::kAllow, false))
                   .add(withKind(policy("apps", "ns-deny-dry", PolicyScope::kNamespace),
                                 PolicyAction::kDeny, true))
                   .add(withKind(policy("apps", "sel-deny", PolicyScope::kWorkloadSelector),
                                 PolicyAction::kDeny, false))
                   .add(withKind(policy("apps", "sel-allow-dry", PolicyScope::kWorkloadSelector),
                                 PolicyAction::kAllow, true))
                   .add(withKind(policy("apps", "sel-unlisted", PolicyScope::kWorkloadSelector),
                                 PolicyAction::kAllow, false))
                   .build();
  const Workload& w = *state->workloadByUid("d");
  std::vector<const Authorization*> all;
  for (auto action : {PolicyAction::kAllow, PolicyAction::kDeny}) {
    for (bool dry : {false, true}) {
      std::vector<std::string> seen;
      EXPECT_TRUE(state->forEachPolicyFor(w, action, dry, [&](const Authorization& p) {
        EXPECT_EQ(p.action, action);
        EXPECT_EQ(p.dryRun, dry);
        seen.push_back(p.key());
        all.push_back(&p);
        return true;
      }));
      std::vector<std::string> sorted = seen;
      std::sort(sorted.begin(), sorted.end());
      EXPECT_EQ(std::adjacent_find(sorted.begin(), sorted.end()), sorted.end());  // no repeats
    }
  }
  EXPECT_EQ(keys(all), keys(state->policiesFor(w)));
  EXPECT_EQ(all.size(), 6u);
  // Early stop.
  int visits = 0;
  EXPECT_FALSE(state->forEachPolicyFor(w, PolicyAction::kDeny, false, [&](const Authorization&) {
    ++visits;
    return false;
  }));
  EXPECT_EQ(visits, 1);
}

TEST(Policies, ConfigurableRootNamespace) {
  StateOptions opts;
  opts.rootNamespace = "mesh-root";
  auto w = makeWorkload("w", "apps", "w", {});
  auto state = StateBuilder(opts)
                   .add(w)
                   .add(policy("mesh-root", "root", PolicyScope::kNamespace))
                   .add(policy("istio-system", "not-root", PolicyScope::kNamespace))
                   .build();
  EXPECT_EQ(keys(state->policiesFor(*state->workloadByUid("w"))),
            std::vector<std::string>{"mesh-root/root"});
}

TEST(Policies, ByKeyAndReusedVector) {
  auto w = makeWorkload("w", "apps", "w", {});
  auto state = StateBuilder().add(w).add(policy("apps", "p", PolicyScope::kNamespace)).build();
  EXPECT_NE(state->policyByKey("apps/p"), nullptr);
  EXPECT_EQ(state->policyByKey("apps/q"), nullptr);
  std::vector<const Authorization*> out = {nullptr, nullptr, nullptr};
  state->policiesFor(*state->workloadByUid("w"), out);
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0]->name, "p");
}

}  // namespace
}  // namespace zt::state
