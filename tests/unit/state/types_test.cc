#include <gtest/gtest.h>

#include "test_helpers.h"
#include "ztunnel/state/errc.h"
#include "ztunnel/state/policy.h"
#include "ztunnel/state/random.h"
#include "ztunnel/state/service.h"
#include "ztunnel/state/workload.h"

namespace zt::state {
namespace {

using testing::ip;

TEST(Identity, UriAndPrincipal) {
  Identity id{"cluster.local", "ns1", "sa1"};
  EXPECT_EQ(id.toUri(), "spiffe://cluster.local/ns/ns1/sa/sa1");
  EXPECT_EQ(id.toPrincipal(), "cluster.local/ns/ns1/sa/sa1");
}

TEST(Identity, ParseUri) {
  auto id = Identity::parseUri("spiffe://td.example/ns/foo/sa/bar");
  ASSERT_TRUE(id);
  EXPECT_EQ(id->trustDomain, "td.example");
  EXPECT_EQ(id->namespace_, "foo");
  EXPECT_EQ(id->serviceAccount, "bar");
  for (const char* bad :
       {"td/ns/foo/sa/bar", "spiffe://td/ns/foo/sa", "spiffe://td/ns/foo/sa/bar/extra",
        "spiffe://td/nx/foo/sa/bar", "spiffe://td/ns/foo/sx/bar", "spiffe:///ns/foo/sa/bar",
        "spiffe://td/ns//sa/bar", "spiffe://td/ns/foo/sa/", "http://td/ns/foo/sa/bar", ""}) {
    EXPECT_FALSE(Identity::parseUri(bad)) << bad;
  }
}

TEST(Workload, DefaultsMirrorProto) {
  Workload w;
  EXPECT_EQ(w.serviceAccount, "default");
  EXPECT_EQ(w.trustDomain, "cluster.local");
  EXPECT_EQ(w.clusterId, "Kubernetes");
  EXPECT_EQ(w.capacity, 1u);
  EXPECT_EQ(w.protocol, TunnelProtocol::kNone);
  EXPECT_EQ(w.status, HealthStatus::kHealthy);
  w.namespace_ = "ns";
  EXPECT_EQ(w.identity().toUri(), "spiffe://cluster.local/ns/ns/sa/default");
}

TEST(Workload, HasIp) {
  auto w = testing::makeWorkload("u", "ns", "n", {"10.0.0.1", "fd00::1"});
  EXPECT_TRUE(w.hasIp(ip("10.0.0.1")));
  EXPECT_TRUE(w.hasIp(ip("fd00::1")));
  EXPECT_FALSE(w.hasIp(ip("10.0.0.2")));
}

TEST(StringMatch, Kinds) {
  EXPECT_TRUE(StringMatch::exact("abc").matches("abc"));
  EXPECT_FALSE(StringMatch::exact("abc").matches("abcd"));
  EXPECT_TRUE(StringMatch::prefix("ab").matches("abc"));
  EXPECT_FALSE(StringMatch::prefix("bc").matches("abc"));
  EXPECT_TRUE(StringMatch::suffix("bc").matches("abc"));
  EXPECT_FALSE(StringMatch::suffix("ab").matches("abc"));
  EXPECT_TRUE(StringMatch::presence().matches("x"));
  EXPECT_FALSE(StringMatch::presence().matches(""));
  EXPECT_TRUE(StringMatch::exact("").matches(""));
  EXPECT_TRUE(StringMatch::prefix("").matches(""));
}

TEST(ServiceVip, CidrAndToString) {
  ServiceVip host{"net", ip("10.0.0.1"), std::nullopt};
  EXPECT_FALSE(host.isCidr());
  EXPECT_EQ(host.toString(), "net/10.0.0.1");
  ServiceVip full{"", ip("10.0.0.1"), 32};
  EXPECT_FALSE(full.isCidr());
  ServiceVip range{"", ip("10.1.0.0"), 16};
  EXPECT_TRUE(range.isCidr());
  EXPECT_TRUE(range.cidr().contains(ip("10.1.200.3")));
  EXPECT_FALSE(range.cidr().contains(ip("10.2.0.1")));
  EXPECT_EQ(range.toString(), "/10.1.0.0/16");
}

TEST(Service, FamiliesAndVisibility) {
  Service s;
  s.namespace_ = "a";
  EXPECT_TRUE(s.acceptsFamily(IpAddress::Family::kV4));
  EXPECT_TRUE(s.acceptsFamily(IpAddress::Family::kV6));
  s.ipFamilies = IpFamilies::kIpv4Only;
  EXPECT_FALSE(s.acceptsFamily(IpAddress::Family::kV6));
  s.ipFamilies = IpFamilies::kIpv6Only;
  EXPECT_FALSE(s.acceptsFamily(IpAddress::Family::kV4));
  EXPECT_TRUE(s.visibleTo("b"));
  s.visibility = ServiceVisibility::kNamespace;
  EXPECT_FALSE(s.visibleTo("b"));
  EXPECT_TRUE(s.visibleTo("a"));
  EXPECT_TRUE(s.visibleTo(""));
}

TEST(StateErrc, Messages) {
  Error e(StateErrc::kNoHealthyUpstream, "ns/host");
  EXPECT_EQ(e.message(), "state: no healthy upstream: ns/host");
  EXPECT_TRUE(e.is(StateErrc::kNoHealthyUpstream));
}

TEST(Random, UniformStaysInRangeAndIsDeterministic) {
  FastRandom a(42), b(42);
  for (int i = 0; i < 1000; ++i) {
    uint64_t x = a.uniform(7);
    EXPECT_LT(x, 7u);
    EXPECT_EQ(x, b.uniform(7));
  }
  FastRandom c(43);
  FastRandom d(42);
  bool differs = false;
  for (int i = 0; i < 10; ++i) {
    differs |= c.next() != d.next();
  }
  EXPECT_TRUE(differs);
}

TEST(Random, UniformIsRoughlyUniform) {
  FastRandom r(7);
  int counts[4] = {};
  constexpr int kDraws = 40000;
  for (int i = 0; i < kDraws; ++i) {
    ++counts[r.uniform(4)];
  }
  for (int c : counts) {
    EXPECT_NEAR(c, kDraws / 4, kDraws / 40);  // within 10% of the expectation
  }
}

}  // namespace
}  // namespace zt::state
