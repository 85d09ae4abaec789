#include "ztunnel/tls/spiffe.h"

#include <gtest/gtest.h>

#include <string>
#include <unordered_set>

namespace zt::tls {
namespace {

TEST(SpiffeTest, ParsesCanonicalIdentity) {
  auto id = Identity::parse("spiffe://cluster.local/ns/default/sa/bookinfo-productpage");
  ASSERT_TRUE(id) << id.error().message();
  EXPECT_EQ(id->trustDomain, "cluster.local");
  EXPECT_EQ(id->ns, "default");
  EXPECT_EQ(id->serviceAccount, "bookinfo-productpage");
  EXPECT_EQ(id->toUri(), "spiffe://cluster.local/ns/default/sa/bookinfo-productpage");
}

TEST(SpiffeTest, AcceptsAllowedCharacters) {
  for (const char* uri : {
           "spiffe://a/ns/b/sa/c",
           "spiffe://td-1_x.example.com/ns/Name.Space_-1/sa/SA.name-2_x",
           "spiffe://1.2.3.4/ns/n/sa/s",
           "spiffe://cluster.local/ns/ns/sa/sa",
           "spiffe://cluster.local/ns/.../sa/a..b",
       }) {
    EXPECT_TRUE(Identity::parse(uri)) << uri;
  }
}

TEST(SpiffeTest, RejectsMalformedIdentities) {
  const std::string longSa(2048, 'a');
  const std::string longTd(256, 'a');
  const std::string kInvalid[] = {
      "",
      "spiffe://",
      "spiffe:/cluster.local/ns/a/sa/b",
      "SPIFFE://cluster.local/ns/a/sa/b",  // scheme is lower-case
      "https://cluster.local/ns/a/sa/b",
      "spiffe:cluster.local/ns/a/sa/b",
      "spiffe://cluster.local",                 // no path
      "spiffe://cluster.local/",                // empty path
      "spiffe:///ns/a/sa/b",                    // empty trust domain
      "spiffe://Cluster.local/ns/a/sa/b",       // upper-case trust domain
      "spiffe://cluster.local:8080/ns/a/sa/b",  // port
      "spiffe://user@cluster.local/ns/a/sa/b",  // userinfo
      "spiffe://clu%73ter.local/ns/a/sa/b",     // percent-encoding
      "spiffe://cluster.local/ns/a/sa/b?x=1",   // query
      "spiffe://cluster.local/ns/a/sa/b#frag",  // fragment
      "spiffe://cluster.local/ns/a%20b/sa/c",   // percent-encoding in path
      "spiffe://cluster.local/ns/a/sa/b/",      // trailing slash (empty segment)
      "spiffe://cluster.local/ns//sa/b",        // empty namespace
      "spiffe://cluster.local/ns/a/sa/",        // empty service account
      "spiffe://cluster.local//ns/a/sa/b",      // empty segment
      "spiffe://cluster.local/ns/a/sa/b/c",     // extra segment
      "spiffe://cluster.local/ns/a/sa",         // missing segment
      "spiffe://cluster.local/ns/a",
      "spiffe://cluster.local/sa/b/ns/a",  // wrong order
      "spiffe://cluster.local/NS/a/sa/b",  // literal must be lower-case "ns"
      "spiffe://cluster.local/ns/a/SA/b",
      "spiffe://cluster.local/namespace/a/sa/b",
      "spiffe://cluster.local/ns/./sa/b",  // dot segments
      "spiffe://cluster.local/ns/../sa/b",
      "spiffe://cluster.local/ns/a/sa/..",
      "spiffe://cluster.local/ns/a b/sa/c",  // space
      "spiffe://cluster.local/ns/a/sa/b\n",
      "spiffe://cluster.local/ns/a/sa/\xc3\xa9",  // non-ASCII
      " spiffe://cluster.local/ns/a/sa/b",
      "spiffe://cluster local/ns/a/sa/b",
      "spiffe://[::1]/ns/a/sa/b",
      "spiffe://cluster.local/ns/a:b/sa/c",
      "spiffe://cluster.local/ns/a/sa/b;x",
      "spiffe://cluster.local/ns/a\\b/sa/c",
      "spiffe://" + longTd + "/ns/a/sa/b",                     // trust domain > 255
      "spiffe://cluster.local/ns/a/sa/" + longSa,              // > 2048 total
      std::string("spiffe://cluster.local/ns/a/sa/b\0c", 34),  // embedded NUL
  };
  for (const auto& uri : kInvalid) {
    auto id = Identity::parse(uri);
    EXPECT_FALSE(id) << "accepted: " << uri;
    if (!id) {
      EXPECT_TRUE(id.error().is(TlsErrc::kInvalidSpiffeId));
    }
  }
}

TEST(SpiffeTest, LengthBoundIsInclusive) {
  std::string prefix = "spiffe://cluster.local/ns/a/sa/";
  std::string atLimit = prefix + std::string(Identity::kMaxUriLength - prefix.size(), 'x');
  EXPECT_TRUE(Identity::parse(atLimit));
  EXPECT_FALSE(Identity::parse(atLimit + "x"));
  std::string td255(255, 'd');
  EXPECT_TRUE(Identity::parse("spiffe://" + td255 + "/ns/a/sa/b"));
}

TEST(SpiffeTest, ErrorsNameTheProblem) {
  auto id = Identity::parse("spiffe://cluster.local:15008/ns/a/sa/b");
  ASSERT_FALSE(id);
  EXPECT_NE(id.error().message().find("port"), std::string::npos) << id.error().message();
  id = Identity::parse("spiffe://cluster.local/ns/a/sa/b?q");
  ASSERT_FALSE(id);
  EXPECT_NE(id.error().message().find("query"), std::string::npos) << id.error().message();
}

TEST(SpiffeTest, MakeEqualityAndHash) {
  Identity a = Identity::make("cluster.local", "ns1", "sa1");
  Identity b = *Identity::parse("spiffe://cluster.local/ns/ns1/sa/sa1");
  Identity c = Identity::make("cluster.local", "ns1", "sa2");
  EXPECT_EQ(a, b);
  EXPECT_NE(a, c);
  EXPECT_EQ(a.hash(), b.hash());
  std::unordered_set<Identity> set{a, b, c};
  EXPECT_EQ(set.size(), 2u);
  EXPECT_TRUE(a.valid());
  EXPECT_FALSE(Identity::make("Bad", "a", "b").valid());
  EXPECT_FALSE(Identity::make("td", "", "b").valid());
  EXPECT_FALSE(Identity::make("td", "a", "b/c").valid());
}

TEST(SpiffeTest, RoundTripsThroughUri) {
  for (const char* uri : {"spiffe://a/ns/b/sa/c", "spiffe://x.y-z_/ns/N.s/sa/S-a_"}) {
    auto id = Identity::parse(uri);
    ASSERT_TRUE(id);
    EXPECT_EQ(id->toUri(), uri);
    EXPECT_EQ(*Identity::parse(id->toUri()), *id);
  }
}

}  // namespace
}  // namespace zt::tls
