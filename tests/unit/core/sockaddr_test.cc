#include "ztunnel/core/sockaddr.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>

namespace zt {
namespace {

TEST(IpAddress, ParsesAndFormatsBothFamilies) {
  auto v4 = IpAddress::parse("10.1.2.3");
  ASSERT_TRUE(v4);
  EXPECT_TRUE(v4->isV4());
  EXPECT_EQ(v4->toString(), "10.1.2.3");
  auto v6 = IpAddress::parse("fd00::1");
  ASSERT_TRUE(v6);
  EXPECT_TRUE(v6->isV6());
  EXPECT_EQ(v6->toString(), "fd00::1");
  EXPECT_FALSE(IpAddress::parse(""));
  EXPECT_FALSE(IpAddress::parse("10.1.2"));
  EXPECT_FALSE(IpAddress::parse("[::1]"));
  EXPECT_FALSE(IpAddress::parse("fd00::1%eth0"));
}

TEST(IpAddress, CanonicalisesV4MappedV6) {
  auto mapped = IpAddress::parse("::ffff:192.168.1.5");
  ASSERT_TRUE(mapped);
  EXPECT_TRUE(mapped->isV4());
  EXPECT_EQ(*mapped, *IpAddress::parse("192.168.1.5"));
}

TEST(IpAddress, FromBytes) {
  EXPECT_EQ(IpAddress::fromBytes(std::string("\x7f\x00\x00\x01", 4))->toString(), "127.0.0.1");
  EXPECT_FALSE(IpAddress::fromBytes("abc"));
  EXPECT_TRUE(IpAddress::parse("127.0.0.9")->isLoopback());
  EXPECT_TRUE(IpAddress::parse("::1")->isLoopback());
  EXPECT_FALSE(IpAddress::parse("10.0.0.1")->isLoopback());
}

TEST(SocketAddress, ParsesBracketedV6AndPlainV4) {
  auto a = SocketAddress::parse("[fd00::1]:8080");
  ASSERT_TRUE(a);
  EXPECT_EQ(a->port(), 8080);
  EXPECT_EQ(a->toString(), "[fd00::1]:8080");
  auto b = SocketAddress::parse("1.2.3.4:80");
  ASSERT_TRUE(b);
  EXPECT_EQ(b->toString(), "1.2.3.4:80");
  EXPECT_FALSE(SocketAddress::parse("fd00::1:80"));  // unbracketed v6
  EXPECT_FALSE(SocketAddress::parse("1.2.3.4:65536"));
  EXPECT_FALSE(SocketAddress::parse("1.2.3.4:"));
  EXPECT_FALSE(SocketAddress::parse("1.2.3.4:+1"));
  EXPECT_FALSE(SocketAddress::parse("[1.2.3.4]:80"));
  EXPECT_FALSE(SocketAddress::parse("[fd00::1]80"));
}

TEST(SocketAddress, RoundTripsThroughSockaddr) {
  for (const char* text : {"1.2.3.4:80", "[fd00::5]:443"}) {
    auto a = SocketAddress::parse(text);
    ASSERT_TRUE(a);
    sockaddr_storage ss;
    socklen_t len = a->toSockaddr(ss);
    auto back = SocketAddress::fromSockaddr(reinterpret_cast<sockaddr*>(&ss), len);
    ASSERT_TRUE(back);
    EXPECT_EQ(*back, *a);
  }
  // A v4 address through a dual-stack (v6) sockaddr comes back as v4.
  auto a = *SocketAddress::parse("1.2.3.4:80");
  sockaddr_storage ss;
  socklen_t len = a.toSockaddrV6(ss);
  EXPECT_EQ(ss.ss_family, AF_INET6);
  EXPECT_EQ(*SocketAddress::fromSockaddr(reinterpret_cast<sockaddr*>(&ss), len), a);
}

TEST(Cidr, ContainsRespectsPrefixAndFamily) {
  auto c = Cidr::parse("10.0.0.0/8");
  ASSERT_TRUE(c);
  EXPECT_TRUE(c->contains(*IpAddress::parse("10.200.0.1")));
  EXPECT_FALSE(c->contains(*IpAddress::parse("11.0.0.1")));
  EXPECT_FALSE(c->contains(*IpAddress::parse("::a00:1")));
  auto odd = Cidr::parse("192.168.1.130/25");
  ASSERT_TRUE(odd);
  EXPECT_EQ(odd->toString(), "192.168.1.128/25");
  EXPECT_TRUE(odd->contains(*IpAddress::parse("192.168.1.255")));
  EXPECT_FALSE(odd->contains(*IpAddress::parse("192.168.1.127")));
  auto host = Cidr::parse("fd00::1");
  ASSERT_TRUE(host);
  EXPECT_EQ(host->prefixLength(), 128);
  EXPECT_FALSE(Cidr::parse("10.0.0.0/33"));
  EXPECT_TRUE(Cidr::parse("::/0")->contains(*IpAddress::parse("fd00::9")));
}

}  // namespace
}  // namespace zt
