#include "ztunnel/proxy/socks5.h"

#include <gtest/gtest.h>

#include <cerrno>

namespace zt::proxy::socks5 {
namespace {

std::span<const uint8_t> bytes(const std::string& s) {
  return {reinterpret_cast<const uint8_t*>(s.data()), s.size()};
}

TEST(Socks5, ConnectIpv4InOneGo) {
  ServerHandshake hs;
  std::string in("\x05\x01\x00" "\x05\x01\x00\x01\x0a\x00\x00\x02\x1f\x90" "tail", 17);
  auto step = hs.feed(bytes(in));
  ASSERT_TRUE(step) << step.error().message();
  EXPECT_EQ(step->reply, std::string("\x05\x00", 2));
  EXPECT_EQ(step->consumed, 13u);
  ASSERT_TRUE(step->target);
  EXPECT_EQ(std::get<SocketAddress>(*step->target).toString(), "10.0.0.2:8080");
  EXPECT_EQ(hs.stage(), ServerHandshake::Stage::kDone);
}

TEST(Socks5, ByteByByte) {
  ServerHandshake hs;
  std::string in("\x05\x02\x02\x00" "\x05\x01\x00\x04" "\xfd\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x01" "\x00\x50", 26);
  std::string buffered;
  std::string replies;
  std::optional<Target> target;
  for (char c : in) {
    buffered.push_back(c);
    auto step = hs.feed(bytes(buffered));
    ASSERT_TRUE(step);
    replies += step->reply;
    buffered.erase(0, step->consumed);
    if (step->target) {
      target = step->target;
    }
  }
  EXPECT_TRUE(buffered.empty());
  EXPECT_EQ(replies, std::string("\x05\x00", 2));
  ASSERT_TRUE(target);
  EXPECT_EQ(std::get<SocketAddress>(*target).toString(), "[fd00::1]:80");
}

TEST(Socks5, DomainTargetsAndLiteralDomains) {
  ServerHandshake hs;
  std::string in("\x05\x01\x00" "\x05\x01\x00\x03\x0b" "example.com" "\x01\xbb", 3 + 5 + 11 + 2);
  auto step = hs.feed(bytes(in));
  ASSERT_TRUE(step && step->target);
  auto d = std::get<DomainTarget>(*step->target);
  EXPECT_EQ(d.host, "example.com");
  EXPECT_EQ(d.port, 443);

  ServerHandshake hs2;
  std::string lit("\x05\x01\x00" "\x05\x01\x00\x03\x08" "10.1.2.3" "\x00\x16", 3 + 5 + 8 + 2);
  auto step2 = hs2.feed(bytes(lit));
  ASSERT_TRUE(step2 && step2->target);
  EXPECT_EQ(std::get<SocketAddress>(*step2->target).toString(), "10.1.2.3:22");
}

TEST(Socks5, Rejections) {
  {
    ServerHandshake hs;
    auto r = hs.feed(bytes(std::string("\x04\x01\x00", 3)));
    ASSERT_FALSE(r);
    EXPECT_TRUE(r.error().is(Socks5Errc::kBadVersion));
    EXPECT_TRUE(ServerHandshake::errorReply(r.error()).empty());
  }
  {
    ServerHandshake hs;
    auto r = hs.feed(bytes(std::string("\x05\x01\x02", 3)));  // only user/pass offered
    ASSERT_FALSE(r);
    EXPECT_EQ(ServerHandshake::errorReply(r.error()), std::string("\x05\xff", 2));
  }
  {
    ServerHandshake hs;
    auto r = hs.feed(bytes(std::string("\x05\x01\x00\x05\x02\x00\x01\x01\x02\x03\x04\x00\x50", 13)));
    ASSERT_FALSE(r);  // BIND
    EXPECT_TRUE(r.error().is(Socks5Errc::kUnsupportedCommand));
    EXPECT_EQ(ServerHandshake::errorReply(r.error())[1], '\x07');
  }
  {
    ServerHandshake hs;
    auto r = hs.feed(bytes(std::string("\x05\x01\x00\x05\x01\x00\x09", 7)));
    ASSERT_FALSE(r);
    EXPECT_TRUE(r.error().is(Socks5Errc::kUnsupportedAddressType));
  }
  {
    ServerHandshake hs;
    auto r = hs.feed(bytes(std::string("\x05\x01\x00\x05\x01\x00\x03\x00\x00\x50", 10)));
    ASSERT_FALSE(r);
    EXPECT_TRUE(r.error().is(Socks5Errc::kMalformed));
  }
}

TEST(Socks5, ConnectReplyEncodesBoundAddress) {
  EXPECT_EQ(connectReply(ReplyCode::kSucceeded, SocketAddress::parse("127.0.0.1:15080")),
            std::string("\x05\x00\x00\x01\x7f\x00\x00\x01\x3a\xe8", 10));
  EXPECT_EQ(connectReply(ReplyCode::kConnectionRefused, std::nullopt),
            std::string("\x05\x05\x00\x01\x00\x00\x00\x00\x00\x00", 10));
}

TEST(Socks5, FailureRepliesFollowTheConnectError) {
  EXPECT_EQ(replyForErrno(ECONNREFUSED), ReplyCode::kConnectionRefused);
  EXPECT_EQ(replyForErrno(ENETUNREACH), ReplyCode::kNetworkUnreachable);
  EXPECT_EQ(replyForErrno(EHOSTUNREACH), ReplyCode::kHostUnreachable);
  EXPECT_EQ(replyForErrno(ETIMEDOUT), ReplyCode::kTtlExpired);
  EXPECT_EQ(replyForErrno(EIO), ReplyCode::kGeneralFailure);
}

}  // namespace
}  // namespace zt::proxy::socks5
