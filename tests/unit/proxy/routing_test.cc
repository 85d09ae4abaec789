#include "ztunnel/proxy/routing.h"

#include <gtest/gtest.h>

#include <memory>
#include <set>
#include <string>
#include <vector>

#include "hbone/headers.h"

namespace zt::proxy {
namespace {

using state::Authorization;
using state::GatewayAddress;
using state::NetworkAddress;
using state::PolicyAction;
using state::PolicyScope;
using state::ProxyState;
using state::Service;
using state::ServiceVip;
using state::StringMatch;
using state::TunnelProtocol;
using state::Workload;

// ---------------------------------------------------------------------------------------------
// Fixture helpers

IpAddress ip(std::string_view text) {
  auto parsed = IpAddress::parse(text);
  EXPECT_TRUE(parsed.has_value()) << text;
  return parsed.value_or(IpAddress());
}

SocketAddress addr(std::string_view text) {
  auto parsed = SocketAddress::parse(text);
  EXPECT_TRUE(parsed.has_value()) << text;
  return parsed.value_or(SocketAddress());
}

Workload workload(std::string ns, std::string name, std::string sa, std::string ipText,
                  TunnelProtocol protocol = TunnelProtocol::kHbone) {
  Workload w;
  w.uid = "Kubernetes//Pod/" + ns + "/" + name;
  w.namespace_ = std::move(ns);
  w.name = std::move(name);
  w.serviceAccount = std::move(sa);
  w.workloadIps.push_back(ip(ipText));
  w.protocol = protocol;
  return w;
}

Service service(std::string ns, std::string name, std::string vipText, state::PortMap ports) {
  Service s;
  s.name = name;
  s.namespace_ = ns;
  s.hostname = name + "." + ns + ".svc.cluster.local";
  s.vips.push_back(ServiceVip{"", ip(vipText), std::nullopt});
  s.ports = std::move(ports);
  return s;
}

std::string svcKey(std::string_view ns, std::string_view name) {
  return std::string(ns) + "/" + std::string(name) + "." + std::string(ns) + ".svc.cluster.local";
}

GatewayAddress gatewayAt(std::string_view ipText) {
  return GatewayAddress{NetworkAddress{"", ip(ipText)}, state::kDefaultHboneMtlsPort};
}

tls::Identity spiffe(std::string_view ns, std::string_view sa) {
  return tls::Identity::make("cluster.local", ns, sa);
}

// Addresses used throughout.
constexpr std::string_view kClientIp = "10.0.0.1";
constexpr std::string_view kServerIp = "10.0.1.1";     // HBONE, backs svc "web"
constexpr std::string_view kUnhealthyIp = "10.0.1.2";  // HBONE, backs "web", unhealthy
constexpr std::string_view kTcpIp = "10.0.2.1";        // plain TCP workload
constexpr std::string_view kWaypointIp = "10.0.3.1";   // waypoint workload
constexpr std::string_view kBehindWpIp = "10.0.1.5";   // workload whose waypoint is kWaypointIp
constexpr std::string_view kWebVip = "10.96.0.1";
constexpr std::string_view kEmptyVip = "10.96.0.2";       // service with only unhealthy endpoints
constexpr std::string_view kPassVip = "10.96.0.3";        // LB mode PASSTHROUGH
constexpr std::string_view kWaypointedVip = "10.96.0.4";  // service with a waypoint
constexpr std::string_view kTcpVip = "10.96.0.5";         // service backed by the TCP workload

class RoutingTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ProxyState::Builder b;

    Workload client = workload("client", "client-pod", "client-sa", std::string(kClientIp));
    client.clusterId = "cluster-a";
    client.workloadName = "client-deploy";
    client.workloadType = state::WorkloadType::kDeployment;
    client.canonicalName = "client-app";
    client.canonicalRevision = "v1";
    client.locality = state::Locality{"eu-west", "eu-west-1a", ""};
    add(b, std::move(client));

    Workload server = workload("server", "web-1", "web-sa", std::string(kServerIp));
    server.services[svcKey("server", "web")] = {{80, 8080}};  // own mapping beats the service's
    server.services[svcKey("server", "waypointed")] = {{80, 8080}};
    add(b, std::move(server));

    Workload sick = workload("server", "web-2", "web-sa", std::string(kUnhealthyIp));
    sick.status = state::HealthStatus::kUnhealthy;
    sick.services[svcKey("server", "web")] = {{80, 8080}};
    sick.services[svcKey("server", "empty")] = {{80, 8080}};
    add(b, std::move(sick));

    Workload tcp = workload("legacy", "db", "db-sa", std::string(kTcpIp), TunnelProtocol::kNone);
    tcp.services[svcKey("legacy", "db")] = {{5432, 5433}};
    add(b, std::move(tcp));

    add(b, workload("server", "waypoint", "waypoint-sa", std::string(kWaypointIp)));

    Workload behind = workload("server", "behind", "behind-sa", std::string(kBehindWpIp));
    behind.waypoint = gatewayAt(kWaypointIp);
    add(b, std::move(behind));

    Service web = service("server", "web", std::string(kWebVip), {{80, 9000}, {443, 8443}});
    web.subjectAltNames = {"spiffe://cluster.local/ns/server/sa/web-san", "not a spiffe id",
                           "spiffe://cluster.local/ns/server/sa/web-sa"};  // duplicate of the pod
    add(b, std::move(web));

    add(b, service("server", "empty", std::string(kEmptyVip), {{80, 8080}}));

    Service pass = service("server", "pass", std::string(kPassVip), {{80, 8080}});
    pass.loadBalancing = state::LoadBalancing{{}, state::LbMode::kPassthrough, {}};
    add(b, std::move(pass));

    Service waypointed = service("server", "waypointed", std::string(kWaypointedVip), {{80, 8080}});
    waypointed.waypoint = gatewayAt(kWaypointIp);
    add(b, std::move(waypointed));

    add(b, service("legacy", "db", std::string(kTcpVip), {{5432, 5432}}));

    state_ = std::move(b).build();
    client_ = state_->workloadByAddress("", ip(kClientIp));
    waypoint_ = state_->workloadByAddress("", ip(kWaypointIp));
    ASSERT_NE(client_, nullptr);
    ASSERT_NE(waypoint_, nullptr);
  }

  template <class T>
  static void add(ProxyState::Builder& b, T value) {
    Status st;
    if constexpr (std::is_same_v<T, Workload>) {
      st = b.addWorkload(std::move(value));
    } else if constexpr (std::is_same_v<T, Service>) {
      st = b.addService(std::move(value));
    } else {
      st = b.addPolicy(std::move(value));
    }
    ASSERT_TRUE(st.has_value()) << st.error().message();
  }

  OutboundRoute route(std::string_view dst, const Workload* source = nullptr, bool socks5 = false,
                      uint64_t seed = 1) {
    state::FastRandom rng(seed);
    return routeOutbound(*state_, "", source ? source : client_, addr(dst), socks5, rng);
  }

  std::shared_ptr<const ProxyState> state_;
  const Workload* client_ = nullptr;
  const Workload* waypoint_ = nullptr;
};

// ---------------------------------------------------------------------------------------------
// routeOutbound

TEST_F(RoutingTest, LoopbackToProxyPortsIsRejected) {
  for (std::string_view dst : {"127.0.0.1:15001", "127.0.0.1:15006", "127.0.0.1:15008",
                               "127.1.2.3:15008", "[::1]:15001"}) {
    auto r = route(dst);
    ASSERT_TRUE(std::holds_alternative<RejectRoute>(r)) << dst;
    EXPECT_EQ(std::get<RejectRoute>(r).flag, ResponseFlag::kConnect);
    EXPECT_NE(std::get<RejectRoute>(r).reason.find("loop"), std::string::npos)
        << std::get<RejectRoute>(r).reason;
  }
  // 15080 only loops when SOCKS5 is enabled.
  EXPECT_TRUE(std::holds_alternative<TcpRoute>(route("127.0.0.1:15080", nullptr, false)));
  EXPECT_TRUE(std::holds_alternative<RejectRoute>(route("127.0.0.1:15080", nullptr, true)));
  // Other loopback ports and proxy ports on other addresses are ordinary destinations.
  EXPECT_TRUE(std::holds_alternative<TcpRoute>(route("127.0.0.1:8080")));
  EXPECT_TRUE(std::holds_alternative<TcpRoute>(route("192.0.2.10:15001")));

  EXPECT_TRUE(isIllegalPort(15001, false));
  EXPECT_TRUE(isIllegalPort(15006, false));
  EXPECT_TRUE(isIllegalPort(15008, false));
  EXPECT_FALSE(isIllegalPort(15080, false));
  EXPECT_TRUE(isIllegalPort(15080, true));
  EXPECT_FALSE(isIllegalPort(15000, true));
}

TEST_F(RoutingTest, HboneWorkloadByIp) {
  auto r = route("10.0.1.1:8080");
  ASSERT_TRUE(std::holds_alternative<HboneRoute>(r));
  const auto& h = std::get<HboneRoute>(r);
  EXPECT_EQ(h.dial.toString(), "10.0.1.1:15008");
  EXPECT_EQ(h.authority.toString(), "10.0.1.1:8080");
  EXPECT_EQ(h.expectedIdentities, std::vector<tls::Identity>{spiffe("server", "web-sa")});
  ASSERT_NE(h.destination, nullptr);
  EXPECT_EQ(h.destination->name, "web-1");
  EXPECT_EQ(h.service, nullptr);
}

TEST_F(RoutingTest, TcpWorkloadByIpGoesToOriginalDestination) {
  auto r = route("10.0.2.1:5433");
  ASSERT_TRUE(std::holds_alternative<TcpRoute>(r));
  const auto& t = std::get<TcpRoute>(r);
  EXPECT_EQ(t.dial.toString(), "10.0.2.1:5433");
  ASSERT_NE(t.destination, nullptr);
  EXPECT_EQ(t.destination->name, "db");
  EXPECT_EQ(t.service, nullptr);
}

TEST_F(RoutingTest, ServiceVipPicksEndpointWithPortMapping) {
  // Port 80: the endpoint's own mapping (8080) wins over the service target port (9000).
  auto r = route("10.96.0.1:80");
  ASSERT_TRUE(std::holds_alternative<HboneRoute>(r));
  const auto& h = std::get<HboneRoute>(r);
  EXPECT_EQ(h.dial.toString(), "10.0.1.1:15008");
  EXPECT_EQ(h.authority.toString(), "10.0.1.1:8080");
  ASSERT_NE(h.service, nullptr);
  EXPECT_EQ(h.service->name, "web");
  ASSERT_NE(h.destination, nullptr);
  EXPECT_EQ(h.destination->name, "web-1");
  // Service SANs (valid SPIFFE ones, in order, deduplicated) then the workload identity.
  EXPECT_EQ(h.expectedIdentities,
            (std::vector<tls::Identity>{spiffe("server", "web-san"), spiffe("server", "web-sa")}));

  // Port 443: no own mapping, so the service's target port.
  auto r443 = route("10.96.0.1:443");
  ASSERT_TRUE(std::holds_alternative<HboneRoute>(r443));
  EXPECT_EQ(std::get<HboneRoute>(r443).authority.toString(), "10.0.1.1:8443");
}

TEST_F(RoutingTest, ServiceVipToTcpEndpoint) {
  auto r = route("10.96.0.5:5432");
  ASSERT_TRUE(std::holds_alternative<TcpRoute>(r));
  const auto& t = std::get<TcpRoute>(r);
  EXPECT_EQ(t.dial.toString(), "10.0.2.1:5433");  // the workload's own mapping
  ASSERT_NE(t.service, nullptr);
  EXPECT_EQ(t.service->name, "db");
  ASSERT_NE(t.destination, nullptr);
  EXPECT_EQ(t.destination->name, "db");
}

TEST_F(RoutingTest, UnhealthyEndpointsAreNeverChosen) {
  for (uint64_t seed = 1; seed <= 64; ++seed) {
    auto r = route("10.96.0.1:80", nullptr, false, seed);
    ASSERT_TRUE(std::holds_alternative<HboneRoute>(r)) << seed;
    EXPECT_EQ(std::get<HboneRoute>(r).dial.ip(), ip(kServerIp)) << seed;
  }
}

TEST_F(RoutingTest, NoHealthyEndpointIsRejected) {
  auto r = route("10.96.0.2:80");
  ASSERT_TRUE(std::holds_alternative<RejectRoute>(r));
  const auto& rej = std::get<RejectRoute>(r);
  EXPECT_EQ(rej.flag, ResponseFlag::kConnect);
  EXPECT_NE(rej.reason.find("no healthy upstream"), std::string::npos) << rej.reason;
  EXPECT_NE(rej.reason.find("server/empty.server.svc.cluster.local"), std::string::npos)
      << rej.reason;
}

TEST_F(RoutingTest, PassthroughServiceGoesToOriginalDestination) {
  auto r = route("10.96.0.3:80");
  ASSERT_TRUE(std::holds_alternative<TcpRoute>(r));
  const auto& t = std::get<TcpRoute>(r);
  EXPECT_EQ(t.dial.toString(), "10.96.0.3:80");
  EXPECT_EQ(t.destination, nullptr);
  ASSERT_NE(t.service, nullptr);
  EXPECT_EQ(t.service->name, "pass");
}

TEST_F(RoutingTest, UnknownDestinationIsPassthrough) {
  for (std::string_view dst : {"192.0.2.7:443", "[2001:db8::7]:80"}) {
    auto r = route(dst);
    ASSERT_TRUE(std::holds_alternative<TcpRoute>(r)) << dst;
    const auto& t = std::get<TcpRoute>(r);
    EXPECT_EQ(t.dial, addr(dst));
    EXPECT_EQ(t.destination, nullptr);
    EXPECT_EQ(t.service, nullptr);
  }
  // An unknown source changes nothing for an unknown destination.
  state::FastRandom rng(3);
  auto r = routeOutbound(*state_, "", nullptr, addr("192.0.2.7:443"), false, rng);
  EXPECT_TRUE(std::holds_alternative<TcpRoute>(r));
}

TEST_F(RoutingTest, WorkloadWaypointKeepsOriginalAuthority) {
  auto r = route("10.0.1.5:8080");
  ASSERT_TRUE(std::holds_alternative<HboneRoute>(r));
  const auto& h = std::get<HboneRoute>(r);
  EXPECT_EQ(h.dial.toString(), "10.0.3.1:15008");
  EXPECT_EQ(h.authority.toString(), "10.0.1.5:8080");  // the original destination
  EXPECT_EQ(h.destination, waypoint_);
  EXPECT_EQ(h.service, nullptr);
  EXPECT_EQ(h.expectedIdentities, std::vector<tls::Identity>{spiffe("server", "waypoint-sa")});
}

TEST_F(RoutingTest, WorkloadWaypointSkippedWhenSourceIsTheWaypoint) {
  auto r = route("10.0.1.5:8080", waypoint_);
  ASSERT_TRUE(std::holds_alternative<HboneRoute>(r));
  const auto& h = std::get<HboneRoute>(r);
  EXPECT_EQ(h.dial.toString(), "10.0.1.5:15008");
  EXPECT_EQ(h.authority.toString(), "10.0.1.5:8080");
  ASSERT_NE(h.destination, nullptr);
  EXPECT_EQ(h.destination->name, "behind");
  EXPECT_EQ(h.expectedIdentities, std::vector<tls::Identity>{spiffe("server", "behind-sa")});
}

TEST_F(RoutingTest, ServiceWaypoint) {
  auto r = route("10.96.0.4:80");
  ASSERT_TRUE(std::holds_alternative<HboneRoute>(r));
  const auto& h = std::get<HboneRoute>(r);
  EXPECT_EQ(h.dial.toString(), "10.0.3.1:15008");
  EXPECT_EQ(h.authority.toString(), "10.96.0.4:80");  // VIP:service port, not the endpoint
  EXPECT_EQ(h.destination, waypoint_);
  ASSERT_NE(h.service, nullptr);
  EXPECT_EQ(h.service->name, "waypointed");  // the addressed service (for forwarded host=)
  EXPECT_EQ(h.expectedIdentities, std::vector<tls::Identity>{spiffe("server", "waypoint-sa")});

  // From the waypoint itself: load-balanced to the service's endpoint.
  auto direct = route("10.96.0.4:80", waypoint_);
  ASSERT_TRUE(std::holds_alternative<HboneRoute>(direct));
  EXPECT_EQ(std::get<HboneRoute>(direct).dial.toString(), "10.0.1.1:15008");
  EXPECT_EQ(std::get<HboneRoute>(direct).authority.toString(), "10.0.1.1:8080");
}

TEST_F(RoutingTest, UnknownWaypointIsRejected) {
  ProxyState::Builder b;
  Workload w = workload("ns", "w", "sa", "10.0.9.1");
  w.waypoint = gatewayAt("10.0.9.99");  // names nothing
  add(b, std::move(w));
  auto st = std::move(b).build();
  state::FastRandom rng(1);
  auto r = routeOutbound(*st, "", nullptr, addr("10.0.9.1:80"), false, rng);
  ASSERT_TRUE(std::holds_alternative<RejectRoute>(r));
  EXPECT_NE(std::get<RejectRoute>(r).reason.find("10.0.9.99"), std::string::npos)
      << std::get<RejectRoute>(r).reason;
}

// The usual Istio shape: a workload's waypoint is addressed by the waypoint *service* VIP, and the
// waypoint deployment has several replicas. Traffic that a replica sends on to the workload must
// go direct (spec §1.8 step 5: "source identity+IP equals a waypoint endpoint"), whichever replica
// the load balancer would pick, or it loops between replicas.
TEST(RoutingWaypointReplicas, SourceReplicaOfWaypointServiceGoesDirect) {
  ProxyState::Builder b;
  const std::string wpKey = svcKey("ns", "wp");
  for (std::string_view ipText : {"10.0.3.1", "10.0.3.2"}) {
    Workload replica =
        workload("ns", "wp-" + std::string(ipText.substr(7)), "wp-sa", std::string(ipText));
    replica.services[wpKey] = {{15008, 15008}};
    ASSERT_TRUE(b.addWorkload(std::move(replica)));
  }
  ASSERT_TRUE(b.addService(service("ns", "wp", "10.96.3.1", {{15008, 15008}})));
  Workload app = workload("ns", "app", "app-sa", "10.0.1.5");
  app.waypoint = gatewayAt("10.96.3.1");
  ASSERT_TRUE(b.addWorkload(std::move(app)));
  auto st = std::move(b).build();

  const Workload* replicaA = st->workloadByAddress("", ip("10.0.3.1"));
  ASSERT_NE(replicaA, nullptr);

  // From a normal client the waypoint service is used (either replica).
  {
    state::FastRandom rng(1);
    auto r = routeOutbound(*st, "", nullptr, addr("10.0.1.5:8080"), false, rng);
    ASSERT_TRUE(std::holds_alternative<HboneRoute>(r));
    EXPECT_EQ(std::get<HboneRoute>(r).dial.port(), 15008);
    EXPECT_NE(std::get<HboneRoute>(r).dial.ip(), ip("10.0.1.5"));
  }
  // From replica A: always direct to the app.
  int toWaypoint = 0;
  for (uint64_t seed = 1; seed <= 32; ++seed) {
    state::FastRandom rng(seed);
    auto r = routeOutbound(*st, "", replicaA, addr("10.0.1.5:8080"), false, rng);
    ASSERT_TRUE(std::holds_alternative<HboneRoute>(r)) << seed;
    if (std::get<HboneRoute>(r).dial.toString() != "10.0.1.5:15008") {
      ++toWaypoint;
    }
  }
  EXPECT_EQ(toWaypoint, 0) << "of 32 connections from waypoint replica 10.0.3.1 to the workload it "
                              "fronts, this many were sent back to a waypoint replica";
}

// ---------------------------------------------------------------------------------------------
// makeConnectRequest

TEST_F(RoutingTest, ConnectRequestHeaders) {
  auto r = route("10.96.0.1:80");
  ASSERT_TRUE(std::holds_alternative<HboneRoute>(r));
  const auto& h = std::get<HboneRoute>(r);
  auto req = makeConnectRequest(h, client_, addr("10.0.0.1:41234"));

  EXPECT_EQ(req.authority, h.authority);
  EXPECT_FALSE(req.forwardedNetwork.has_value());

  auto baggage = hbone::decodeBaggage(req.baggage);
  ASSERT_TRUE(baggage) << req.baggage;
  EXPECT_EQ(baggage->clusterId, "cluster-a");
  EXPECT_EQ(baggage->namespaceName, "client");
  EXPECT_EQ(baggage->workloadType, "deployment");
  EXPECT_EQ(baggage->workloadName, "client-deploy");
  EXPECT_EQ(baggage->serviceName, "client-app");
  EXPECT_EQ(baggage->serviceVersion, "v1");
  EXPECT_EQ(baggage->region, "eu-west");
  EXPECT_EQ(baggage->zone, "eu-west-1a");

  auto fwd = hbone::parseForwarded(req.forwarded);
  ASSERT_TRUE(fwd) << req.forwarded;
  ASSERT_TRUE(fwd->forAddress.has_value()) << req.forwarded;
  EXPECT_EQ(fwd->forAddress->toString(), "10.0.0.1:41234");
  EXPECT_EQ(fwd->host, "web.server.svc.cluster.local");

  auto tp = hbone::TraceContext::parse(req.traceparent);
  ASSERT_TRUE(tp) << req.traceparent;
  EXPECT_EQ(req.traceparent.substr(0, 3), "00-");
  // Fresh per tunnel.
  auto again = makeConnectRequest(h, client_, addr("10.0.0.1:41234"));
  EXPECT_NE(again.traceparent, req.traceparent);

  // The header list carries them all.
  auto headers = req.toHeaders();
  std::set<std::string> names;
  for (const auto& f : headers) {
    names.insert(f.name);
  }
  for (const char* n : {":method", ":authority", "baggage", "forwarded", "traceparent"}) {
    EXPECT_TRUE(names.count(n)) << n;
  }
}

TEST_F(RoutingTest, ConnectRequestWithoutServiceOrSource) {
  auto r = route("10.0.1.1:8080");
  ASSERT_TRUE(std::holds_alternative<HboneRoute>(r));
  auto req = makeConnectRequest(std::get<HboneRoute>(r), nullptr, addr("[fd00::1]:5000"));
  EXPECT_EQ(req.authority.toString(), "10.0.1.1:8080");
  EXPECT_TRUE(req.baggage.empty()) << req.baggage;
  auto fwd = hbone::parseForwarded(req.forwarded);
  ASSERT_TRUE(fwd) << req.forwarded;
  ASSERT_TRUE(fwd->forAddress.has_value());
  EXPECT_EQ(fwd->forAddress->toString(), "[fd00::1]:5000");
  EXPECT_TRUE(fwd->host.empty()) << req.forwarded;
  EXPECT_TRUE(hbone::TraceContext::parse(req.traceparent)) << req.traceparent;
}

// ---------------------------------------------------------------------------------------------
// resolveInbound / resolveInboundPlaintext

class InboundTest : public ::testing::Test {
 protected:
  void SetUp() override { build({}); }

  void build(std::vector<Authorization> policies) {
    ProxyState::Builder b;
    Workload server = workload("server", "web-1", "web-sa", "10.0.1.1");
    server.services[svcKey("server", "web")] = {{80, 8080}};
    server.authorizationPolicies = {"server/selector"};
    ASSERT_TRUE(b.addWorkload(std::move(server)));
    ASSERT_TRUE(b.addService(service("server", "web", "10.96.0.1", {{80, 9000}, {443, 8443}})));
    ASSERT_TRUE(b.addService(service("server", "other", "10.96.0.9", {{80, 8080}})));
    for (auto& p : policies) {
      ASSERT_TRUE(b.addPolicy(std::move(p)));
    }
    state_ = std::move(b).build();
  }

  static Authorization policy(std::string name, PolicyAction action, state::Match match,
                              PolicyScope scope = PolicyScope::kNamespace) {
    Authorization p;
    p.name = std::move(name);
    p.namespace_ = "server";
    p.scope = scope;
    p.action = action;
    p.rules.push_back(state::Rule{{state::Clause{{std::move(match)}}}});
    return p;
  }

  static state::Match principals(std::vector<StringMatch> values, bool negate = false) {
    state::Match m;
    (negate ? m.notPrincipals : m.principals) = std::move(values);
    return m;
  }

  InboundDecision inbound(std::string_view authority, std::string_view arrival = "10.0.1.1",
                          tls::Identity peerId = spiffe("client", "client-sa")) {
    auto a = hbone::Authority::parse(authority);
    EXPECT_TRUE(a) << authority;
    return resolveInbound(*state_, "", a.value_or(hbone::Authority()), ip(arrival), ip("10.0.0.1"),
                          peerId, false);
  }

  std::shared_ptr<const ProxyState> state_;
};

// The rejection (by value: callers pass temporaries), or a status-0 placeholder after a failed
// expectation when the decision was an accept.
InboundReject rejected(const InboundDecision& d) {
  EXPECT_TRUE(std::holds_alternative<InboundReject>(d)) << "the connection was accepted";
  if (const auto* r = std::get_if<InboundReject>(&d)) {
    return *r;
  }
  return InboundReject{0, ResponseFlag::kNone, "accepted", nullptr};
}

TEST_F(InboundTest, UnknownWorkloadAtArrivalIs503) {
  const InboundReject r = rejected(inbound("10.0.1.77:8080", "10.0.1.77"));
  EXPECT_EQ(r.status, 503);
  EXPECT_EQ(r.destination, nullptr);
  EXPECT_NE(r.reason.find("10.0.1.77"), std::string::npos) << r.reason;
}

TEST_F(InboundTest, AuthorityIpMismatchIs400) {
  const InboundReject r = rejected(inbound("10.0.1.2:8080", "10.0.1.1"));
  EXPECT_EQ(r.status, 400);
  ASSERT_NE(r.destination, nullptr);
  EXPECT_EQ(r.destination->name, "web-1");
  EXPECT_NE(r.reason.find("mismatch"), std::string::npos) << r.reason;
}

TEST_F(InboundTest, MatchingAuthorityIsAccepted) {
  auto d = inbound("10.0.1.1:8080");
  ASSERT_TRUE(std::holds_alternative<InboundAccept>(d)) << rejected(d).reason;
  const auto& a = std::get<InboundAccept>(d);
  EXPECT_EQ(a.upstream.toString(), "10.0.1.1:8080");
  ASSERT_NE(a.destination, nullptr);
  EXPECT_EQ(a.destination->name, "web-1");
  EXPECT_TRUE(a.decision.allowed);
  EXPECT_EQ(a.decision.reason, rbac::Decision::Reason::kNoAllowPolicies);
}

TEST_F(InboundTest, ProxyPortsAre503) {
  for (std::string_view authority : {"10.0.1.1:15001", "10.0.1.1:15006", "10.0.1.1:15008"}) {
    const InboundReject r = rejected(inbound(authority));
    EXPECT_EQ(r.status, 503) << authority;
    EXPECT_NE(r.destination, nullptr) << authority;
  }
  // 15080 only with SOCKS5 enabled.
  auto a = hbone::Authority::parse("10.0.1.1:15080");
  ASSERT_TRUE(a);
  auto off = resolveInbound(*state_, "", *a, ip("10.0.1.1"), ip("10.0.0.1"),
                            spiffe("client", "client-sa"), false);
  EXPECT_TRUE(std::holds_alternative<InboundAccept>(off));
  auto on = resolveInbound(*state_, "", *a, ip("10.0.1.1"), ip("10.0.0.1"),
                           spiffe("client", "client-sa"), true);
  EXPECT_EQ(rejected(on).status, 503);
}

TEST_F(InboundTest, DenyPolicyMatchingPeerIs401) {
  build({policy("deny-client", PolicyAction::kDeny,
                principals({StringMatch::exact("cluster.local/ns/client/sa/client-sa")}))});
  const InboundReject r = rejected(inbound("10.0.1.1:8080"));
  EXPECT_EQ(r.status, 401);
  EXPECT_EQ(r.flag, ResponseFlag::kDeny);
  EXPECT_NE(r.reason.find("server/deny-client"), std::string::npos) << r.reason;

  // Another peer is not denied.
  auto ok = inbound("10.0.1.1:8080", "10.0.1.1", spiffe("other", "other-sa"));
  EXPECT_TRUE(std::holds_alternative<InboundAccept>(ok));
}

TEST_F(InboundTest, AllowPolicyForAnotherPrincipalIs401) {
  build({policy("allow-other", PolicyAction::kAllow,
                principals({StringMatch::exact("cluster.local/ns/other/sa/other-sa")}))});
  const InboundReject r = rejected(inbound("10.0.1.1:8080"));
  EXPECT_EQ(r.status, 401);
  EXPECT_EQ(r.flag, ResponseFlag::kDeny);

  auto ok = inbound("10.0.1.1:8080", "10.0.1.1", spiffe("other", "other-sa"));
  ASSERT_TRUE(std::holds_alternative<InboundAccept>(ok)) << rejected(ok).reason;
  const auto& a = std::get<InboundAccept>(ok);
  EXPECT_EQ(a.decision.reason, rbac::Decision::Reason::kAllowMatched);
  ASSERT_NE(a.decision.policy, nullptr);
  EXPECT_EQ(a.decision.policy->name, "allow-other");
}

TEST_F(InboundTest, SelectorPolicyListedByWorkloadApplies) {
  // Port-scoped DENY attached through Workload::authorizationPolicies: RBAC sees the upstream
  // (target) port, not the authority's service port.
  state::Match m;
  m.destinationPorts = {8443};
  build({policy("selector", PolicyAction::kDeny, m, PolicyScope::kWorkloadSelector)});
  EXPECT_EQ(rejected(inbound("web.server.svc.cluster.local:443")).status, 401);
  EXPECT_TRUE(std::holds_alternative<InboundAccept>(inbound("10.0.1.1:8080")));
}

TEST_F(InboundTest, HostnameAuthorityUsesServicePortMap) {
  // Port 80: the workload's own mapping (8080) over the service target port (9000).
  auto d = inbound("web.server.svc.cluster.local:80");
  ASSERT_TRUE(std::holds_alternative<InboundAccept>(d)) << rejected(d).reason;
  EXPECT_EQ(std::get<InboundAccept>(d).upstream.toString(), "10.0.1.1:8080");
  // Port 443: only the service knows it.
  auto d443 = inbound("web.server.svc.cluster.local:443");
  ASSERT_TRUE(std::holds_alternative<InboundAccept>(d443)) << rejected(d443).reason;
  EXPECT_EQ(std::get<InboundAccept>(d443).upstream.toString(), "10.0.1.1:8443");
  // A port nobody maps.
  const InboundReject noPort = rejected(inbound("web.server.svc.cluster.local:81"));
  EXPECT_EQ(noPort.status, 503);
  EXPECT_NE(noPort.destination, nullptr);
}

TEST_F(InboundTest, UnknownHostnameIs503) {
  const InboundReject r = rejected(inbound("nope.server.svc.cluster.local:80"));
  EXPECT_EQ(r.status, 503);
  ASSERT_NE(r.destination, nullptr);
  EXPECT_NE(r.reason.find("nope.server.svc.cluster.local"), std::string::npos) << r.reason;
}

TEST_F(InboundTest, PlaintextChecks) {
  auto plain = [&](std::string_view dst, bool socks5 = false) {
    return resolveInboundPlaintext(*state_, "", addr(dst), ip("10.0.0.1"), socks5);
  };
  EXPECT_EQ(rejected(plain("10.0.1.77:8080")).status, 503);
  EXPECT_EQ(rejected(plain("10.0.1.1:15008")).status, 503);
  EXPECT_EQ(rejected(plain("10.0.1.1:15006")).status, 503);
  EXPECT_EQ(rejected(plain("10.0.1.1:15001")).status, 503);
  EXPECT_TRUE(std::holds_alternative<InboundAccept>(plain("10.0.1.1:15080", false)));
  EXPECT_EQ(rejected(plain("10.0.1.1:15080", true)).status, 503);

  auto ok = plain("10.0.1.1:8080");
  ASSERT_TRUE(std::holds_alternative<InboundAccept>(ok)) << rejected(ok).reason;
  EXPECT_EQ(std::get<InboundAccept>(ok).upstream.toString(), "10.0.1.1:8080");
  EXPECT_EQ(std::get<InboundAccept>(ok).destination->name, "web-1");

  // Deny connections without an identity (Istio's notPrincipals: ["*"]).
  build({policy("require-mtls", PolicyAction::kDeny,
                principals({StringMatch::presence()}, /*negate=*/true))});
  const InboundReject r = rejected(plain("10.0.1.1:8080"));
  EXPECT_EQ(r.status, 401);
  EXPECT_EQ(r.flag, ResponseFlag::kDeny);
  EXPECT_NE(r.reason.find("server/require-mtls"), std::string::npos) << r.reason;
  // The same policy lets an mTLS peer through on 15008.
  EXPECT_TRUE(std::holds_alternative<InboundAccept>(inbound("10.0.1.1:8080")));

  // An ALLOW for a principal can never match plaintext.
  build({policy("allow-client", PolicyAction::kAllow,
                principals({StringMatch::exact("cluster.local/ns/client/sa/client-sa")}))});
  EXPECT_EQ(rejected(plain("10.0.1.1:8080")).status, 401);
  EXPECT_TRUE(std::holds_alternative<InboundAccept>(inbound("10.0.1.1:8080")));
}

}  // namespace
}  // namespace zt::proxy
