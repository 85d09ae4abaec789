#include "hbone/connect_request.h"

#include <gtest/gtest.h>

namespace hbone {
namespace {

TEST(Authority, ParsesIpv4) {
  auto a = Authority::parse("10.1.2.3:8080");
  ASSERT_TRUE(a.has_value());
  ASSERT_TRUE(a->isAddress());
  EXPECT_EQ(a->address()->ip(), *zt::IpAddress::parse("10.1.2.3"));
  EXPECT_EQ(a->port(), 8080);
  EXPECT_EQ(a->toString(), "10.1.2.3:8080");
}

TEST(Authority, ParsesBracketedIpv6) {
  auto a = Authority::parse("[fd00::1]:15008");
  ASSERT_TRUE(a.has_value());
  ASSERT_TRUE(a->isAddress());
  EXPECT_TRUE(a->address()->ip().isV6());
  EXPECT_EQ(a->port(), 15008);
  EXPECT_EQ(a->toString(), "[fd00::1]:15008");
  // Non-canonical text comes back canonical, and parses to the same value.
  auto b = Authority::parse("[FD00:0:0::1]:15008");
  ASSERT_TRUE(b.has_value());
  EXPECT_EQ(*a, *b);
}

TEST(Authority, V4MappedCanonicalisesToV4) {
  auto a = Authority::parse("[::ffff:10.0.0.1]:80");
  ASSERT_TRUE(a.has_value());
  EXPECT_TRUE(a->address()->ip().isV4());
  EXPECT_EQ(a->toString(), "10.0.0.1:80");
}

TEST(Authority, ParsesHostPort) {
  auto a = Authority::parse("reviews.default.svc.cluster.local:9080");
  ASSERT_TRUE(a.has_value());
  EXPECT_FALSE(a->isAddress());
  EXPECT_EQ(a->host(), "reviews.default.svc.cluster.local");
  EXPECT_EQ(a->port(), 9080);
  EXPECT_EQ(a->toString(), "reviews.default.svc.cluster.local:9080");
  EXPECT_TRUE(Authority::parse("localhost:1").has_value());
  EXPECT_TRUE(Authority::parse("a_b.example-1.com:65535").has_value());
  EXPECT_TRUE(Authority::parse("1a.2b:80").has_value());
}

TEST(Authority, RejectsMalformed) {
  const char* bad[] = {
      "",
      "10.0.0.1",           // no port
      "10.0.0.1:",          // empty port
      ":80",                // empty host
      "10.0.0.1:0",         // port 0
      "10.0.0.1:65536",     // port range
      "10.0.0.1:080",       // leading zero
      "10.0.0.1:+80",       // sign
      "10.0.0.1:8a",        // not a number
      "::1:80",             // unbracketed v6
      "[::1]",              // no port
      "[::1]80",            // missing ':'
      "[1.2.3.4]:80",       // bracketed v4
      "[fe80::1%eth0]:80",  // zone
      "[::1:80",            // unterminated
      "1.2.3:80",           // not an IPv4, not a host name
      "256.1.1.1:80",       // octet range
      "01.2.3.4:80",        // leading zero octet
      "-host:80",
      "host-:80",
      "a..b:80",
      "host.:80",  // trailing dot
      ".host:80",
      "ho st:80",
      "host:80 ",
      "user@host:80",
      "host/path:80",
      "h\x01st:80",
  };
  for (const char* text : bad) {
    EXPECT_FALSE(Authority::parse(text).has_value()) << "accepted: " << text;
  }
  EXPECT_FALSE(Authority::parse(std::string(64, 'a') + ".com:80").has_value());  // label > 63
  std::string longHost;
  while (longHost.size() < 254) {
    longHost += "abcdefghi.";
  }
  longHost += "com";
  EXPECT_FALSE(Authority::parse(longHost + ":80").has_value());  // > 253
}

TEST(Authority, OfHostValidates) {
  EXPECT_TRUE(Authority::ofHost("svc.ns", 80).has_value());
  EXPECT_FALSE(Authority::ofHost("svc.ns", 0).has_value());
  EXPECT_FALSE(Authority::ofHost("bad host", 80).has_value());
  auto err = Authority::ofHost("", 80);
  ASSERT_FALSE(err.has_value());
  EXPECT_TRUE(err.error().is(HboneErrc::kInvalidAuthority));
}

TEST(Authority, RoundTripsThroughToString) {
  for (const char* text : {"1.2.3.4:1", "[::1]:443", "[2001:db8::8:800:200c:417a]:65535",
                           "my-svc.ns.svc.cluster.local:15008"}) {
    auto a = Authority::parse(text);
    ASSERT_TRUE(a.has_value()) << text;
    auto b = Authority::parse(a->toString());
    ASSERT_TRUE(b.has_value());
    EXPECT_EQ(*a, *b);
    EXPECT_EQ(a->toString(), text);
  }
}

using Fields = std::vector<std::pair<std::string, std::string>>;

zt::Result<ConnectRequest> parseFields(const Fields& fields) {
  ConnectRequestParser p;
  for (auto& [n, v] : fields) {
    p.add(n, v);
  }
  return std::move(p).finish();
}

TEST(ConnectRequestParser, AcceptsClassicConnectWithHbOneHeaders) {
  auto r = parseFields({{":method", "CONNECT"},
                        {":authority", "[fd00::2]:9090"},
                        {"baggage", "k8s.cluster.name=c1"},
                        {"forwarded", "for=\"10.0.0.1:1234\";host=svc"},
                        {"traceparent", "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-00"},
                        {"x-forwarded-network", "net2"},
                        {"user-agent", "ignored"}});
  ASSERT_TRUE(r.has_value()) << r.error().message();
  EXPECT_EQ(r->authority.toString(), "[fd00::2]:9090");
  EXPECT_EQ(r->baggage, "k8s.cluster.name=c1");
  EXPECT_EQ(r->forwarded, "for=\"10.0.0.1:1234\";host=svc");
  EXPECT_EQ(r->traceparent, "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-00");
  EXPECT_EQ(r->forwardedNetwork, "net2");
}

TEST(ConnectRequestParser, JoinsRepeatedBaggageAndKeepsFirstTraceparent) {
  auto r = parseFields({{":method", "CONNECT"},
                        {":authority", "svc.ns:80"},
                        {"baggage", "a=1"},
                        {"baggage", "b=2"},
                        {"traceparent", "first"},
                        {"traceparent", "second"},
                        {"te", "trailers"}});
  ASSERT_TRUE(r.has_value()) << r.error().message();
  EXPECT_EQ(r->baggage, "a=1, b=2");
  EXPECT_EQ(r->traceparent, "first");
  EXPECT_FALSE(r->forwardedNetwork.has_value());
}

TEST(ConnectRequestParser, RejectsEverythingButClassicConnect) {
  const std::vector<std::pair<const char*, Fields>> cases = {
      {"GET", {{":method", "GET"}, {":scheme", "https"}, {":path", "/"}, {":authority", "a:1"}}},
      {"POST no path", {{":method", "POST"}, {":authority", "1.2.3.4:80"}}},
      {"lowercase method", {{":method", "connect"}, {":authority", "1.2.3.4:80"}}},
      {"missing method", {{":authority", "1.2.3.4:80"}}},
      {"missing authority", {{":method", "CONNECT"}}},
      {"empty authority", {{":method", "CONNECT"}, {":authority", ""}}},
      {"bad authority", {{":method", "CONNECT"}, {":authority", "1.2.3.4"}}},
      {":path", {{":method", "CONNECT"}, {":authority", "1.2.3.4:80"}, {":path", "/"}}},
      {":scheme", {{":method", "CONNECT"}, {":scheme", "https"}, {":authority", "1.2.3.4:80"}}},
      {"extended CONNECT",
       {{":method", "CONNECT"}, {":protocol", "websocket"}, {":authority", "1.2.3.4:80"}}},
      {"unknown pseudo", {{":method", "CONNECT"}, {":authority", "1.2.3.4:80"}, {":foo", "x"}}},
      {"repeated authority",
       {{":method", "CONNECT"}, {":authority", "1.2.3.4:80"}, {":authority", "1.2.3.4:80"}}},
      {"repeated method",
       {{":method", "CONNECT"}, {":method", "CONNECT"}, {":authority", "1.2.3.4:80"}}},
      {"pseudo after regular",
       {{":method", "CONNECT"}, {"baggage", "a=b"}, {":authority", "1.2.3.4:80"}}},
      {"uppercase name", {{":method", "CONNECT"}, {":authority", "1.2.3.4:80"}, {"Baggage", "a"}}},
      {"empty name", {{":method", "CONNECT"}, {":authority", "1.2.3.4:80"}, {"", "a"}}},
      {"CR in value", {{":method", "CONNECT"}, {":authority", "1.2.3.4:80"}, {"x", "a\rb"}}},
      {"NUL in value",
       {{":method", "CONNECT"}, {":authority", "1.2.3.4:80"}, {"x", std::string("a\0b", 3)}}},
      {"leading space", {{":method", "CONNECT"}, {":authority", "1.2.3.4:80"}, {"x", " a"}}},
      {"connection header",
       {{":method", "CONNECT"}, {":authority", "1.2.3.4:80"}, {"connection", "close"}}},
      {"transfer-encoding",
       {{":method", "CONNECT"}, {":authority", "1.2.3.4:80"}, {"transfer-encoding", "chunked"}}},
      {"te other than trailers",
       {{":method", "CONNECT"}, {":authority", "1.2.3.4:80"}, {"te", "gzip"}}},
  };
  for (const auto& [name, fields] : cases) {
    auto r = parseFields(fields);
    ASSERT_FALSE(r.has_value()) << name;
    EXPECT_TRUE(r.error().is(HboneErrc::kBadRequest) || r.error().is(HboneErrc::kInvalidAuthority))
        << name << ": " << r.error().message();
  }
}

TEST(ConnectRequest, HeadersRoundTripThroughParser) {
  ConnectRequest req;
  req.authority = *Authority::parse("reviews.default.svc.cluster.local:9080");
  req.baggage = "k8s.cluster.name=c,service.name=reviews";
  req.forwarded = "for=\"[fd00::7]:5555\";host=reviews.default.svc.cluster.local";
  req.traceparent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-00";
  req.forwardedNetwork = "network-1";
  auto headers = req.toHeaders();
  ASSERT_GE(headers.size(), 2u);
  EXPECT_EQ(headers[0], (HeaderField{":method", "CONNECT"}));
  EXPECT_EQ(headers[1], (HeaderField{":authority", "reviews.default.svc.cluster.local:9080"}));
  for (const auto& h : headers) {
    EXPECT_NE(h.name, ":scheme");
    EXPECT_NE(h.name, ":path");
  }
  ConnectRequestParser p;
  for (const auto& h : headers) {
    p.add(h.name, h.value);
  }
  auto back = std::move(p).finish();
  ASSERT_TRUE(back.has_value()) << back.error().message();
  EXPECT_EQ(*back, req);

  // Absent headers stay absent.
  ConnectRequest bare;
  bare.authority = *Authority::parse("1.2.3.4:5");
  EXPECT_EQ(bare.toHeaders().size(), 2u);
}

}  // namespace
}  // namespace hbone
