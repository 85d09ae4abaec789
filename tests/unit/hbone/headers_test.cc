#include "hbone/headers.h"

#include <gtest/gtest.h>

#include <set>

namespace hbone {
namespace {

Baggage fullBaggage() {
  Baggage b;
  b.clusterId = "Kubernetes";
  b.namespaceName = "default";
  b.workloadType = "deployment";
  b.workloadName = "productpage-v1";
  b.serviceName = "productpage";
  b.serviceVersion = "v1";
  b.region = "us-east1";
  b.zone = "us-east1-b";
  return b;
}

TEST(Baggage, EncodesZtunnelKeysInOrder) {
  EXPECT_EQ(encodeBaggage(fullBaggage()),
            "k8s.cluster.name=Kubernetes,k8s.namespace.name=default,"
            "k8s.deployment.name=productpage-v1,service.name=productpage,service.version=v1,"
            "cloud.region=us-east1,cloud.availability_zone=us-east1-b");
}

TEST(Baggage, OmitsEmptyFieldsAndDefaultsType) {
  Baggage b;
  b.namespaceName = "ns";
  b.workloadName = "w";
  EXPECT_EQ(encodeBaggage(b), "k8s.namespace.name=ns,k8s.deployment.name=w");
  b.workloadType = "Pod";
  EXPECT_EQ(encodeBaggage(b), "k8s.namespace.name=ns,k8s.pod.name=w");
  EXPECT_EQ(encodeBaggage(Baggage{}), "");
}

TEST(Baggage, RoundTrips) {
  Baggage b = fullBaggage();
  auto back = decodeBaggage(encodeBaggage(b));
  ASSERT_TRUE(back.has_value()) << back.error().message();
  EXPECT_EQ(*back, b);
  for (const char* type : {"cronjob", "pod", "job"}) {
    b.workloadType = type;
    auto again = decodeBaggage(encodeBaggage(b));
    ASSERT_TRUE(again.has_value());
    EXPECT_EQ(*again, b);
  }
}

TEST(Baggage, RoundTripsAwkwardBytes) {
  Baggage b;
  b.clusterId = "a,b;c=d \"e\" %25 \\ \x01\xff";
  b.zone = "100%";
  std::string encoded = encodeBaggage(b);
  EXPECT_EQ(encoded.find(' '), std::string::npos);
  auto back = decodeBaggage(encoded);
  ASSERT_TRUE(back.has_value()) << back.error().message();
  EXPECT_EQ(*back, b);
}

TEST(Baggage, DecodesLeniently) {
  auto b = decodeBaggage(
      " k8s.cluster.name = c1 ,unknown.key=x, k8s.namespace.name=ns;prop=1;flag ,"
      "k8s.job.name=j1,,service.name=s,service.name=s2,");
  ASSERT_TRUE(b.has_value()) << b.error().message();
  EXPECT_EQ(b->clusterId, "c1");
  EXPECT_EQ(b->namespaceName, "ns");
  EXPECT_EQ(b->workloadType, "job");
  EXPECT_EQ(b->workloadName, "j1");
  EXPECT_EQ(b->serviceName, "s2");  // last wins
  EXPECT_TRUE(b->region.empty());
  auto empty = decodeBaggage("");
  ASSERT_TRUE(empty.has_value());
  EXPECT_EQ(*empty, Baggage{});
  // Unknown workload kinds are ignored (ztunnel only knows four).
  auto other = decodeBaggage("k8s.statefulset.name=x");
  ASSERT_TRUE(other.has_value());
  EXPECT_TRUE(other->workloadName.empty());
}

TEST(Baggage, Rejects) {
  for (std::string bad :
       {std::string("novalue"), std::string("=v"), std::string("k y=v"), std::string("k=a b"),
        std::string("k=\"q\""), std::string("k=%zz"), std::string("k=%4"), std::string("k=a\\b"),
        std::string("k=\x80"), std::string("k(=v")}) {
    auto r = decodeBaggage(bad);
    ASSERT_FALSE(r.has_value()) << bad;
    EXPECT_TRUE(r.error().is(HboneErrc::kInvalidHeader));
  }
  EXPECT_FALSE(decodeBaggage("k=" + std::string(8200, 'a')).has_value());
}

TEST(Forwarded, BuildsZtunnelForm) {
  auto v4 = *zt::SocketAddress::parse("10.0.0.1:34567");
  auto v6 = *zt::SocketAddress::parse("[fd00::1]:80");
  EXPECT_EQ(buildForwarded(v4), "for=\"10.0.0.1:34567\"");
  EXPECT_EQ(buildForwarded(v6, "reviews.default.svc.cluster.local"),
            "for=\"[fd00::1]:80\";host=reviews.default.svc.cluster.local");
  EXPECT_EQ(buildForwarded(v4, "odd host\""), "for=\"10.0.0.1:34567\";host=\"odd host\\\"\"");
}

TEST(Forwarded, RoundTrips) {
  auto client = *zt::SocketAddress::parse("[fd00::9]:1234");
  for (const char* host : {"", "svc.ns.svc.cluster.local", "needs quoting\\\""}) {
    auto f = parseForwarded(buildForwarded(client, host));
    ASSERT_TRUE(f.has_value()) << host;
    EXPECT_EQ(f->forAddress, client);
    EXPECT_EQ(f->host, host);
  }
}

TEST(Forwarded, ParsesVariants) {
  auto f = parseForwarded("For=1.2.3.4;Proto=https;HOST=\"svc.ns\";by=_hidden, for=5.6.7.8");
  ASSERT_TRUE(f.has_value()) << f.error().message();
  EXPECT_EQ(f->forAddress, zt::SocketAddress(*zt::IpAddress::parse("1.2.3.4"), 0));
  EXPECT_EQ(f->host, "svc.ns");
  auto hidden = parseForwarded("for=_gazonk;host=h");
  ASSERT_TRUE(hidden.has_value());
  EXPECT_FALSE(hidden->forAddress.has_value());
  EXPECT_EQ(hidden->host, "h");
  auto v6 = parseForwarded("for=\"[2001:db8:cafe::17]\"");
  ASSERT_TRUE(v6.has_value());
  ASSERT_TRUE(v6->forAddress.has_value());
  EXPECT_TRUE(v6->forAddress->ip().isV6());
  auto none = parseForwarded("");
  ASSERT_TRUE(none.has_value());
  EXPECT_FALSE(none->forAddress.has_value());
  EXPECT_TRUE(none->host.empty());
}

TEST(Forwarded, Rejects) {
  for (const char* bad : {"for", "for=", "=x", "for=\"unterminated", "for=a b", "host=a;host=b",
                          "for=1.2.3.4;for=1.2.3.5", "host=\"a\x01\"", "for=a=b"}) {
    auto r = parseForwarded(bad);
    ASSERT_FALSE(r.has_value()) << bad;
    EXPECT_TRUE(r.error().is(HboneErrc::kInvalidHeader));
  }
}

TEST(Traceparent, GeneratesW3cVersion00) {
  std::set<std::string> seen;
  for (int i = 0; i < 100; ++i) {
    std::string tp = generateTraceparent();
    ASSERT_EQ(tp.size(), 55u);
    EXPECT_EQ(tp.substr(0, 3), "00-");
    EXPECT_EQ(tp[35], '-');
    EXPECT_EQ(tp[52], '-');
    EXPECT_EQ(tp.substr(53), "00");
    for (char c : tp) {
      EXPECT_TRUE((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || c == '-') << tp;
    }
    auto parsed = TraceContext::parse(tp);
    ASSERT_TRUE(parsed.has_value()) << tp;
    EXPECT_EQ(parsed->toString(), tp);
    seen.insert(tp);
  }
  EXPECT_EQ(seen.size(), 100u);  // random per tunnel
}

TEST(Traceparent, ParsesValid) {
  auto tc = TraceContext::parse("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01");
  ASSERT_TRUE(tc.has_value());
  EXPECT_EQ(tc->traceId[0], 0x0a);
  EXPECT_EQ(tc->traceId[15], 0x9c);
  EXPECT_EQ(tc->parentId[7], 0x31);
  EXPECT_EQ(tc->flags, 1);
  // A future version may append fields.
  EXPECT_TRUE(TraceContext::parse("cc-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01-what")
                  .has_value());
  EXPECT_TRUE(
      TraceContext::parse("01-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01").has_value());
}

TEST(Traceparent, Rejects) {
  for (const char* bad : {
           "",
           "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-0",     // short
           "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-00-x",  // v00 with extra
           "ff-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-00",    // version ff
           "00-0AF7651916CD43DD8448EB211C80319C-b7ad6b7169203331-00",    // uppercase
           "00-00000000000000000000000000000000-b7ad6b7169203331-00",    // zero trace id
           "00-0af7651916cd43dd8448eb211c80319c-0000000000000000-00",    // zero parent id
           "00_0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-00",    // separator
           "00-0af7651916cd43dd8448eb211c80319g-b7ad6b7169203331-00",    // not hex
           "01-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-00x",   // later version, no '-'
       }) {
    auto r = TraceContext::parse(bad);
    ASSERT_FALSE(r.has_value()) << bad;
    EXPECT_TRUE(r.error().is(HboneErrc::kInvalidHeader));
  }
}

}  // namespace
}  // namespace hbone
