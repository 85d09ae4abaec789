#include "hbone/session.h"

#include <gtest/gtest.h>

#include "hbone_test_util.h"

namespace hbone {
namespace {

using namespace std::chrono_literals;
using testing::bufferOf;
using testing::pattern;
using testing::RawClient;
using testing::SessionPair;

std::vector<std::string> events(std::initializer_list<const char*> list) {
  return std::vector<std::string>(list.begin(), list.end());
}

TEST(HboneSession, ConnectEstablishesTunnelAndCarriesHeaders) {
  SessionPair p;
  ConnectRequest req = testing::requestTo("[fd00::2]:9080");
  req.forwardedNetwork = "net-a";
  auto id = p.client->openTunnel(req);
  ASSERT_TRUE(id.has_value());
  EXPECT_EQ(*id, 1);
  p.pump();
  ASSERT_EQ(p.serverObs.requests, 1);
  const auto& got = *p.serverObs.streams[1].request;
  EXPECT_EQ(got, req);
  EXPECT_EQ(got.authority.toString(), "[fd00::2]:9080");
  EXPECT_EQ(p.clientObs.streams[1].status, 200);
  EXPECT_EQ(p.client->activeStreams(), 1u);
  EXPECT_EQ(p.server->activeStreams(), 1u);

  auto up = bufferOf("hello server");
  ASSERT_TRUE(p.client->send(1, up).has_value());
  EXPECT_TRUE(up.empty());
  auto down = bufferOf("hello client");
  ASSERT_TRUE(p.server->send(1, down).has_value());
  p.pump();
  EXPECT_EQ(p.serverObs.streams[1].data, "hello server");
  EXPECT_EQ(p.clientObs.streams[1].data, "hello client");

  ASSERT_TRUE(p.client->closeWrite(1).has_value());
  ASSERT_TRUE(p.server->closeWrite(1).has_value());
  p.pump();
  EXPECT_EQ(p.clientObs.streams[1].events, events({"response:200", "data", "eof", "closed"}));
  EXPECT_EQ(p.serverObs.streams[1].events, events({"request", "data", "eof", "closed"}));
  EXPECT_EQ(p.client->activeStreams(), 0u);
  EXPECT_EQ(p.server->activeStreams(), 0u);
  EXPECT_FALSE(p.client->isDead());
  EXPECT_FALSE(p.server->isDead());
}

TEST(HboneSession, HostPortAuthority) {
  SessionPair p;
  p.open("reviews.default.svc.cluster.local:9080");
  p.pump();
  ASSERT_EQ(p.serverObs.requests, 1);
  const auto& a = p.serverObs.streams[1].request->authority;
  EXPECT_FALSE(a.isAddress());
  EXPECT_EQ(a.host(), "reviews.default.svc.cluster.local");
  EXPECT_EQ(a.port(), 9080);
}

TEST(HboneSession, ErrorResponsesEndTheStreamWithoutBody) {
  for (int status : {400, 401, 503}) {
    SessionPair p;
    p.serverObs.onRequest = [&](StreamId id, const ConnectRequest&) {
      ASSERT_TRUE(p.server->respond(id, status).has_value());
    };
    StreamId id = p.open();
    auto early = bufferOf("queued before the answer");
    ASSERT_TRUE(p.client->send(id, early).has_value());
    p.pump();
    EXPECT_EQ(p.clientObs.streams[id].events,
              events({("response:" + std::to_string(status)).c_str(), "closed"}))
        << status;
    EXPECT_EQ(p.serverObs.streams[id].events, events({"request", "closed"})) << status;
    EXPECT_TRUE(p.serverObs.streams[id].data.empty());  // client data waits for a 200
    EXPECT_EQ(p.client->activeStreams(), 0u);
    EXPECT_EQ(p.server->activeStreams(), 0u);
    EXPECT_FALSE(p.client->isDead());
    // The connection stays usable.
    EXPECT_TRUE(p.client->canOpenTunnel());
  }
}

TEST(HboneSession, LateRespondAndResponseBaggage) {
  SessionPair p;
  p.serverObs.onRequest = nullptr;  // answer later
  StreamId id = p.open();
  p.pump();
  EXPECT_EQ(p.clientObs.streams[id].status, 0);
  auto st = p.server->respond(id, 200, "k8s.namespace.name=dest");
  ASSERT_TRUE(st.has_value()) << st.error().message();
  EXPECT_FALSE(p.server->respond(id, 200).has_value());  // only once
  p.pump();
  EXPECT_EQ(p.clientObs.streams[id].status, 200);
  EXPECT_EQ(p.clientObs.streams[id].baggage, "k8s.namespace.name=dest");
  EXPECT_FALSE(p.server->respond(99, 200).has_value());
  auto bad = p.server->respond(id, 250);
  EXPECT_FALSE(bad.has_value());
}

TEST(HboneSession, ServerAnswers400ToMalformedConnects) {
  SessionPair p;  // only for the server
  RawClient raw;
  using F = std::vector<std::pair<std::string, std::string>>;
  int32_t get = raw.request(
      {{":method", "GET"}, {":scheme", "https"}, {":path", "/"}, {":authority", "10.0.0.2:80"}}, {},
      true);
  int32_t withPath =
      raw.request({{":method", "CONNECT"}, {":authority", "10.0.0.2:80"}, {":path", "/x"}});
  int32_t withScheme =
      raw.request({{":method", "CONNECT"}, {":scheme", "http"}, {":authority", "10.0.0.2:80"}});
  int32_t noAuthority = raw.request(F{{":method", "CONNECT"}});
  int32_t badAuthority = raw.request({{":method", "CONNECT"}, {":authority", "10.0.0.2"}});
  int32_t v6NoBrackets = raw.request({{":method", "CONNECT"}, {":authority", "fd00::1:80"}});
  int32_t good = raw.request({{":method", "CONNECT"}, {":authority", "[fd00::1]:80"}});
  testing::pumpRaw(raw, *p.server);
  for (int32_t id : {get, withPath, withScheme, noAuthority, badAuthority, v6NoBrackets}) {
    EXPECT_EQ(raw.status[id], 400) << "stream " << id;
    EXPECT_TRUE(raw.closeCode.count(id)) << "stream " << id << " not closed";
    EXPECT_TRUE(raw.data[id].empty());
  }
  EXPECT_EQ(raw.status[good], 200);
  EXPECT_EQ(p.serverObs.requests, 1);  // malformed ones never reach the observer
  EXPECT_EQ(p.serverObs.streams.count(good), 1u);
  EXPECT_FALSE(p.server->isDead());
  EXPECT_EQ(p.server->activeStreams(), 1u);
}

TEST(HboneSession, ServerHandsOverDataThatArrivesBeforeRespond) {
  SessionPair p;
  p.serverObs.onRequest = nullptr;
  p.serverObs.autoConsume = false;
  RawClient raw;
  int32_t id =
      raw.request({{":method", "CONNECT"}, {":authority", "10.0.0.2:80"}}, "early bytes", false);
  testing::pumpRaw(raw, *p.server);
  EXPECT_EQ(p.serverObs.streams[id].data, "early bytes");
  EXPECT_EQ(p.serverObs.streams[id].events, events({"request", "data"}));
  ASSERT_TRUE(p.server->respond(id, 200).has_value());
  p.server->consume(id, 11);
  auto reply = bufferOf("reply");
  ASSERT_TRUE(p.server->send(id, reply).has_value());
  testing::pumpRaw(raw, *p.server);
  EXPECT_EQ(raw.status[id], 200);
  EXPECT_EQ(raw.data[id], "reply");
}

TEST(HboneSession, ClientDataWaitsForThe200) {
  SessionPair p;
  p.serverObs.onRequest = nullptr;
  StreamId id = p.open();
  auto early = bufferOf("first bytes");
  ASSERT_TRUE(p.client->send(id, early).has_value());
  ASSERT_TRUE(p.client->closeWrite(id).has_value());
  p.pump();
  EXPECT_TRUE(p.serverObs.streams[id].data.empty());
  EXPECT_FALSE(p.serverObs.streams[id].eof);
  ASSERT_TRUE(p.server->respond(id, 200).has_value());
  p.pump();
  EXPECT_EQ(p.serverObs.streams[id].data, "first bytes");
  EXPECT_TRUE(p.serverObs.streams[id].eof);
}

TEST(HboneSession, HalfCloseClientFirstThenLateReply) {
  SessionPair p;
  StreamId id = p.open();
  p.pump();
  std::string up = pattern(1 << 20, 1);
  auto b = bufferOf(up);
  ASSERT_TRUE(p.client->send(id, b).has_value());
  ASSERT_TRUE(p.client->closeWrite(id).has_value());
  p.pump();
  EXPECT_EQ(p.serverObs.streams[id].data, up);
  EXPECT_TRUE(p.serverObs.streams[id].eof);
  EXPECT_FALSE(p.clientObs.streams[id].closed);
  // "Two seconds later" the server replies and closes.
  std::string down = pattern(1 << 20, 2);
  auto d = bufferOf(down);
  ASSERT_TRUE(p.server->send(id, d).has_value());
  ASSERT_TRUE(p.server->closeWrite(id).has_value());
  p.pump();
  EXPECT_EQ(p.clientObs.streams[id].data, down);
  EXPECT_EQ(p.clientObs.streams[id].events, events({"response:200", "data", "eof", "closed"}));
  EXPECT_EQ(p.serverObs.streams[id].events, events({"request", "data", "eof", "closed"}));
}

TEST(HboneSession, HalfCloseServerFirstThenClientKeepsSending) {
  SessionPair p;
  StreamId id = p.open();
  p.pump();
  std::string down = pattern(1 << 20, 3);
  auto d = bufferOf(down);
  ASSERT_TRUE(p.server->send(id, d).has_value());
  ASSERT_TRUE(p.server->closeWrite(id).has_value());
  p.pump();
  EXPECT_EQ(p.clientObs.streams[id].data, down);
  EXPECT_TRUE(p.clientObs.streams[id].eof);
  EXPECT_FALSE(p.serverObs.streams[id].closed);
  std::string up = pattern(1 << 20, 4);
  auto b = bufferOf(up);
  ASSERT_TRUE(p.client->send(id, b).has_value());
  ASSERT_TRUE(p.client->closeWrite(id).has_value());
  p.pump();
  EXPECT_EQ(p.serverObs.streams[id].data, up);
  EXPECT_EQ(p.serverObs.streams[id].events, events({"request", "data", "eof", "closed"}));
  EXPECT_EQ(p.clientObs.streams[id].events, events({"response:200", "data", "eof", "closed"}));
  EXPECT_FALSE(p.clientObs.streams[id].resetCode.has_value());
  EXPECT_FALSE(p.serverObs.streams[id].resetCode.has_value());
}

TEST(HboneSession, EndOfStreamIsAnEmptyDataFrameNotRst) {
  SessionPair p;
  StreamId id = p.open();
  p.pump();
  zt::ByteBuffer out;
  ASSERT_TRUE(p.client->closeWrite(id).has_value());
  ASSERT_TRUE(p.client->produce(out, 1 << 20).has_value());
  std::string bytes = out.toString();
  ASSERT_EQ(bytes.size(), 9u);  // one frame header, no payload
  EXPECT_EQ(bytes[3], static_cast<char>(NGHTTP2_DATA));
  EXPECT_EQ(bytes[4], static_cast<char>(NGHTTP2_FLAG_END_STREAM));
}

struct ResetCase {
  bool serverResets;
  uint32_t code;
  bool expectEof;
};

TEST(HboneSession, PeerResetNoErrorAndCancelAreEofOthersAreErrors) {
  const ResetCase cases[] = {
      {true, h2::kNoError, true},  {true, h2::kCancel, true},  {true, h2::kInternalError, false},
      {false, h2::kNoError, true}, {false, h2::kCancel, true}, {false, h2::kProtocolError, false},
  };
  for (const auto& c : cases) {
    SessionPair p;
    StreamId id = p.open();
    p.pump();
    if (c.serverResets) {
      p.server->reset(id, c.code);
    } else {
      p.client->reset(id, c.code);
    }
    p.pump();
    auto& peer = c.serverResets ? p.clientObs.streams[id] : p.serverObs.streams[id];
    auto& self = c.serverResets ? p.serverObs.streams[id] : p.clientObs.streams[id];
    EXPECT_TRUE(peer.closed);
    EXPECT_EQ(peer.eof, c.expectEof) << c.code;
    if (c.expectEof) {
      EXPECT_FALSE(peer.resetCode.has_value());
    } else {
      ASSERT_TRUE(peer.resetCode.has_value());
      EXPECT_EQ(*peer.resetCode, c.code);
    }
    // The side that reset hears only onStreamClosed.
    EXPECT_TRUE(self.closed);
    EXPECT_FALSE(self.resetCode.has_value());
    EXPECT_FALSE(self.eof);
    EXPECT_EQ(p.client->activeStreams(), 0u);
    EXPECT_EQ(p.server->activeStreams(), 0u);
  }
}

TEST(HboneSession, PeerResetBeforeTheAnswerIsAnErrorForTheServer) {
  SessionPair p;
  p.serverObs.onRequest = nullptr;
  StreamId id = p.open();
  p.pump();
  p.client->reset(id, h2::kCancel);
  p.pump();
  EXPECT_EQ(p.serverObs.streams[id].events, events({"request", "reset:8", "closed"}));
  EXPECT_FALSE(p.server->respond(id, 200).has_value());
}

TEST(HboneSession, RefusedBeforeResponseIsReportedAsReset) {
  SessionPair p;
  p.serverObs.onRequest = nullptr;
  StreamId id = p.open();
  p.pump();
  p.server->reset(id, h2::kRefusedStream);
  p.pump();
  EXPECT_EQ(p.clientObs.streams[id].events, events({"reset:7", "closed"}));
}

TEST(HboneSession, PingKeepsHealthyPairAlive) {
  SessionPair p;
  zt::ManualClock clock;
  StreamId id = p.open();
  p.pump();
  for (int i = 0; i < 200; ++i) {
    ASSERT_TRUE(p.client->tick(clock.now()).has_value()) << i;
    ASSERT_TRUE(p.server->tick(clock.now()).has_value()) << i;
    p.pump();
    clock.advance(1s);
  }
  EXPECT_FALSE(p.client->isDead());
  EXPECT_FALSE(p.server->isDead());
  EXPECT_FALSE(p.clientObs.streams[id].closed);
  // PINGs went out: 200 s at one per 10 s, 17 bytes each, plus their ACKs.
  EXPECT_GT(p.c2sBytes, 19u * 17u * 2u);
}

TEST(HboneSession, PingTimeoutKillsSessionWhenPeerStopsAnswering) {
  SessionPair p;
  zt::ManualClock clock;
  StreamId id = p.open();
  p.pump();
  ASSERT_TRUE(p.client->tick(clock.now()).has_value());  // starts the clock
  p.cutServerToClient = true;                            // the server's ACKs are lost
  zt::Status st = zt::ok();
  int seconds = 0;
  for (; seconds < 60 && st; ++seconds) {
    clock.advance(1s);
    st = p.client->tick(clock.now());
    p.pump();
  }
  ASSERT_FALSE(st.has_value());
  EXPECT_TRUE(st.error().is(HboneErrc::kPingTimeout));
  // First PING at 10 s, dead 20 s later.
  EXPECT_EQ(seconds, 30);
  EXPECT_TRUE(p.client->isDead());
  ASSERT_NE(p.client->failure(), nullptr);
  EXPECT_TRUE(p.client->failure()->is(HboneErrc::kPingTimeout));
  EXPECT_EQ(
      p.clientObs.streams[id].events,
      events({"response:200", ("reset:" + std::to_string(h2::kConnectError)).c_str(), "closed"}));
  EXPECT_FALSE(p.client->canOpenTunnel());
  EXPECT_FALSE(p.client->openTunnel(testing::requestTo("1.2.3.4:5")).has_value());
}

TEST(HboneSession, StalledReaderStopsAtTheStreamWindow) {
  SessionPair p;
  p.serverObs.autoConsume = false;
  StreamId id = p.open();
  p.pump();
  std::string payload = pattern(10 << 20, 5);
  auto b = bufferOf(payload);
  ASSERT_TRUE(p.client->send(id, b).has_value());
  p.pump();
  const size_t window = 4 << 20;
  EXPECT_EQ(p.serverObs.streams[id].data.size(), window);
  EXPECT_EQ(p.client->queuedBytes(id), payload.size() - window);
  EXPECT_LT(p.c2sBytes, window + 64 * 1024);  // what crossed the wire: the window + framing
  // Consuming reopens the window and the rest flows.
  p.server->consume(id, window);
  p.serverObs.autoConsume = true;
  p.pump();
  EXPECT_EQ(p.serverObs.streams[id].data, payload);
  EXPECT_EQ(p.client->queuedBytes(id), 0u);
}

TEST(HboneSession, ConnectionWindowBoundsTheTotalAcrossStreams) {
  SessionPair p;
  p.serverObs.autoConsume = false;
  std::vector<StreamId> ids;
  for (int i = 0; i < 6; ++i) {
    ids.push_back(p.open());
  }
  p.pump();
  for (StreamId id : ids) {
    auto b = bufferOf(pattern(5 << 20, id));
    ASSERT_TRUE(p.client->send(id, b).has_value());
  }
  p.pump();
  size_t total = 0;
  for (StreamId id : ids) {
    EXPECT_LE(p.serverObs.streams[id].data.size(), size_t{4} << 20);
    total += p.serverObs.streams[id].data.size();
  }
  EXPECT_EQ(total, size_t{16} << 20);
  // Releasing everything lets all of it through.
  for (StreamId id : ids) {
    p.server->consume(id, p.serverObs.streams[id].data.size());
  }
  p.serverObs.autoConsume = true;
  p.pump();
  for (StreamId id : ids) {
    EXPECT_EQ(p.serverObs.streams[id].data, pattern(5 << 20, id));
  }
}

TEST(HboneSession, UnconsumedBytesOfClosedStreamsReturnToTheConnectionWindow) {
  SessionPair p;
  p.serverObs.autoConsume = false;
  // Fill and reset streams without consuming; the connection must not shrink for good.
  for (int round = 0; round < 6; ++round) {
    StreamId id = p.open();
    p.pump();
    auto b = bufferOf(pattern(4 << 20, round));
    ASSERT_TRUE(p.client->send(id, b).has_value());
    p.pump();
    EXPECT_EQ(p.serverObs.streams[id].data.size(), size_t{4} << 20) << round;
    p.server->reset(id, h2::kCancel);
    p.pump();
  }
}

TEST(HboneSession, SendQueueWatermarksSignalWritable) {
  SessionConfig cc = SessionConfig::clientDefaults();
  cc.sendHighWatermark = 1 << 20;
  cc.sendLowWatermark = 256 << 10;
  SessionPair p(cc);
  StreamId id = p.open();
  p.pump();
  auto b = bufferOf(pattern(3 << 20, 9));
  ASSERT_TRUE(p.client->send(id, b).has_value());
  EXPECT_EQ(p.client->queuedBytes(id), size_t{3} << 20);
  p.pump();
  EXPECT_EQ(p.client->queuedBytes(id), 0u);
  EXPECT_EQ(p.clientObs.streams[id].writable, 1);
}

TEST(HboneSession, HundredStreamsMoveOneMebibyteEachWayByteExact) {
  SessionPair p;
  std::map<StreamId, std::string> upData;
  std::map<StreamId, std::string> downData;
  std::vector<StreamId> ids;
  for (int i = 0; i < 100; ++i) {
    ids.push_back(p.open());
  }
  EXPECT_FALSE(p.client->canOpenTunnel());  // 100 is the client's per-connection cap
  p.pump();
  ASSERT_EQ(p.serverObs.requests, 100);
  for (StreamId id : ids) {
    upData[id] = pattern(1 << 20, 1000 + id);
    downData[id] = pattern(1 << 20, 2000 + id);
    auto up = bufferOf(upData[id]);
    ASSERT_TRUE(p.client->send(id, up).has_value());
    ASSERT_TRUE(p.client->closeWrite(id).has_value());
    auto down = bufferOf(downData[id]);
    ASSERT_TRUE(p.server->send(id, down).has_value());
    ASSERT_TRUE(p.server->closeWrite(id).has_value());
  }
  p.pump();
  for (StreamId id : ids) {
    ASSERT_TRUE(p.serverObs.streams[id].data == upData[id]) << id;
    ASSERT_TRUE(p.clientObs.streams[id].data == downData[id]) << id;
    EXPECT_EQ(p.clientObs.streams[id].events, events({"response:200", "data", "eof", "closed"}));
    EXPECT_EQ(p.serverObs.streams[id].events, events({"request", "data", "eof", "closed"}));
  }
  EXPECT_EQ(p.client->activeStreams(), 0u);
  EXPECT_TRUE(p.client->canOpenTunnel());
}

TEST(HboneSession, ClientRespectsServerMaxConcurrentStreams) {
  SessionConfig sc = SessionConfig::serverDefaults();
  sc.maxConcurrentStreams = 5;
  SessionPair p(SessionConfig::clientDefaults(), sc);
  p.pump();  // SETTINGS exchange
  std::vector<StreamId> ids;
  while (p.client->canOpenTunnel()) {
    ids.push_back(p.open());
    ASSERT_LE(ids.size(), 5u);
  }
  EXPECT_EQ(ids.size(), 5u);
  auto extra = p.client->openTunnel(testing::requestTo("1.2.3.4:5"));
  ASSERT_FALSE(extra.has_value());
  EXPECT_TRUE(extra.error().is(HboneErrc::kStreamLimit));
  p.pump();
  EXPECT_EQ(p.serverObs.requests, 5);
  p.client->reset(ids[0], h2::kCancel);
  p.pump();
  EXPECT_TRUE(p.client->canOpenTunnel());
}

TEST(HboneSession, ClientCapsStreamsPerConnection) {
  SessionConfig cc = SessionConfig::clientDefaults();
  cc.maxStreamsPerConnection = 3;
  SessionPair p(cc);
  p.pump();
  int opened = 0;
  while (p.client->canOpenTunnel() && opened < 10) {
    p.open();
    ++opened;
  }
  EXPECT_EQ(opened, 3);
}

TEST(HboneSession, ServerGoawayDrainsInFlightStreams) {
  SessionPair p;
  StreamId id = p.open();
  p.pump();
  p.server->goAway();
  p.pump();
  EXPECT_EQ(p.clientObs.goaways, 1);
  EXPECT_FALSE(p.client->canOpenTunnel());
  auto refused = p.client->openTunnel(testing::requestTo("1.2.3.4:5"));
  ASSERT_FALSE(refused.has_value());
  EXPECT_TRUE(refused.error().is(HboneErrc::kGoaway));
  // The in-flight tunnel finishes normally.
  std::string up = pattern(2 << 20, 11);
  auto b = bufferOf(up);
  ASSERT_TRUE(p.client->send(id, b).has_value());
  ASSERT_TRUE(p.client->closeWrite(id).has_value());
  auto d = bufferOf("bye");
  ASSERT_TRUE(p.server->send(id, d).has_value());
  ASSERT_TRUE(p.server->closeWrite(id).has_value());
  EXPECT_FALSE(p.server->isDead());
  p.pump();
  EXPECT_EQ(p.serverObs.streams[id].data, up);
  EXPECT_EQ(p.clientObs.streams[id].events, events({"response:200", "data", "eof", "closed"}));
  // Nothing left: both sides are finished, cleanly.
  EXPECT_TRUE(p.client->isDead());
  EXPECT_TRUE(p.server->isDead());
  EXPECT_EQ(p.client->failure(), nullptr);
  EXPECT_EQ(p.server->failure(), nullptr);
}

TEST(HboneSession, StreamsOpenedAcrossGoawayAreRefused) {
  SessionPair p;
  StreamId first = p.open();
  p.pump();
  p.server->goAway();
  StreamId racing = p.open();  // the client has not seen the GOAWAY yet
  p.pump();
  EXPECT_EQ(p.clientObs.goaways, 1);
  EXPECT_EQ(p.clientObs.streams[racing].events, events({"reset:7", "closed"}));
  EXPECT_EQ(p.serverObs.requests, 1);
  EXPECT_EQ(p.clientObs.streams[first].status, 200);
}

TEST(HboneSession, ClientGoawayStopsNewTunnels) {
  SessionPair p;
  StreamId id = p.open();
  p.pump();
  p.client->goAway();
  EXPECT_FALSE(p.client->canOpenTunnel());
  p.pump();
  ASSERT_TRUE(p.client->closeWrite(id).has_value());
  ASSERT_TRUE(p.server->closeWrite(id).has_value());
  p.pump();
  EXPECT_TRUE(p.clientObs.streams[id].closed);
  EXPECT_TRUE(p.client->isDead());
  EXPECT_EQ(p.client->failure(), nullptr);
}

TEST(HboneSession, AbortFailsEveryOpenStream) {
  SessionPair p;
  StreamId a = p.open();
  StreamId b = p.open();
  p.pump();
  p.client->abort();
  const std::string reset = "reset:" + std::to_string(h2::kConnectError);
  EXPECT_EQ(p.clientObs.streams[a].events, events({"response:200", reset.c_str(), "closed"}));
  EXPECT_EQ(p.clientObs.streams[b].events, events({"response:200", reset.c_str(), "closed"}));
  EXPECT_TRUE(p.client->isDead());
  EXPECT_FALSE(p.client->wantsWrite());
  ASSERT_NE(p.client->failure(), nullptr);
  EXPECT_TRUE(p.client->failure()->is(HboneErrc::kAborted));
  auto buf = bufferOf("x");
  EXPECT_FALSE(p.client->send(a, buf).has_value());
}

TEST(HboneSession, AbortFromInsideACallback) {
  SessionPair p;
  p.serverObs.onRequest = [&](StreamId, const ConnectRequest&) { p.server->abort(); };
  StreamId id = p.open();
  p.pump();
  EXPECT_TRUE(p.server->isDead());
  ASSERT_NE(p.server->failure(), nullptr);
  EXPECT_TRUE(p.server->failure()->is(HboneErrc::kAborted));
  EXPECT_EQ(p.serverObs.streams[id].events,
            events({"request", ("reset:" + std::to_string(h2::kConnectError)).c_str(), "closed"}));
}

TEST(HboneSession, GarbageKillsTheServerSession) {
  SessionPair p;
  auto junk = bufferOf("GET / HTTP/1.1\r\nHost: x\r\n\r\n");
  auto st = testing::feed(*p.server, junk);
  ASSERT_FALSE(st.has_value());
  EXPECT_TRUE(p.server->isDead());
  EXPECT_FALSE(p.server->wantsRead());
  EXPECT_FALSE(p.server->receive(std::span<const uint8_t>()).has_value());
}

TEST(HboneSession, OversizedRequestHeadersAreRefused) {
  SessionConfig sc = SessionConfig::serverDefaults();
  sc.maxHeaderListSize = 16 << 10;
  SessionPair p(SessionConfig::clientDefaults(), sc);
  ConnectRequest req = testing::requestTo("10.0.0.2:80");
  req.baggage = "k=" + std::string(20 << 10, 'a');
  auto id = p.client->openTunnel(req);
  ASSERT_TRUE(id.has_value());
  p.pump();
  EXPECT_EQ(p.serverObs.requests, 0);
  ASSERT_TRUE(p.clientObs.streams[*id].resetCode.has_value());
  EXPECT_TRUE(p.clientObs.streams[*id].closed);
  EXPECT_FALSE(p.server->isDead());
  // The connection still works.
  StreamId ok = p.open();
  p.pump();
  EXPECT_EQ(p.clientObs.streams[ok].status, 200);
}

TEST(HboneSession, ProduceIsBoundedPerCall) {
  SessionPair p;
  StreamId id = p.open();
  p.pump();
  auto b = bufferOf(pattern(2 << 20, 12));
  ASSERT_TRUE(p.client->send(id, b).has_value());
  zt::ByteBuffer out;
  ASSERT_TRUE(p.client->produce(out, 100 * 1024).has_value());
  EXPECT_GE(out.size(), 100u * 1024);
  EXPECT_LE(out.size(), 100u * 1024 + SessionConfig{}.maxSendFramePayload + 9);
  EXPECT_TRUE(p.client->wantsWrite());
}

TEST(HboneSession, RejectsBadConfig) {
  testing::RecordingClient obs;
  SessionConfig c = SessionConfig::clientDefaults();
  c.maxFrameSize = 1000;
  EXPECT_FALSE(ClientSession::create(c, obs).has_value());
  c = SessionConfig::clientDefaults();
  c.sendLowWatermark = c.sendHighWatermark + 1;
  EXPECT_FALSE(ClientSession::create(c, obs).has_value());
  c = SessionConfig::clientDefaults();
  c.connectionWindow = 1u << 31;
  auto r = ClientSession::create(c, obs);
  ASSERT_FALSE(r.has_value());
  EXPECT_TRUE(r.error().is(HboneErrc::kInvalidConfig));
}

TEST(HboneSession, AdvertisesZtunnelSettings) {
  // Decode the server's first SETTINGS frame and connection WINDOW_UPDATE.
  testing::RecordingServer obs;
  auto server = ServerSession::create(SessionConfig::serverDefaults(), obs);
  ASSERT_TRUE(server.has_value());
  zt::ByteBuffer out;
  ASSERT_TRUE((*server)->produce(out, 1 << 20).has_value());
  std::string bytes = out.toString();
  ASSERT_GE(bytes.size(), 9u);
  auto u8 = [&](size_t i) { return static_cast<uint8_t>(bytes[i]); };
  size_t len = (u8(0) << 16) | (u8(1) << 8) | u8(2);
  ASSERT_EQ(u8(3), NGHTTP2_SETTINGS);
  std::map<uint16_t, uint32_t> settings;
  for (size_t i = 9; i + 6 <= 9 + len; i += 6) {
    settings[static_cast<uint16_t>((u8(i) << 8) | u8(i + 1))] =
        (uint32_t{u8(i + 2)} << 24) | (u8(i + 3) << 16) | (u8(i + 4) << 8) | u8(i + 5);
  }
  EXPECT_EQ(settings[NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE], 4u << 20);
  EXPECT_EQ(settings[NGHTTP2_SETTINGS_MAX_FRAME_SIZE], 1u << 20);
  EXPECT_EQ(settings[NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS], 200u);
  EXPECT_EQ(settings[NGHTTP2_SETTINGS_MAX_HEADER_LIST_SIZE], 64u << 10);
  EXPECT_EQ(settings[NGHTTP2_SETTINGS_ENABLE_PUSH], 0u);
  size_t w = 9 + len;
  ASSERT_GE(bytes.size(), w + 13);
  ASSERT_EQ(u8(w + 3), NGHTTP2_WINDOW_UPDATE);
  uint32_t inc = ((u8(w + 9) & 0x7f) << 24) | (u8(w + 10) << 16) | (u8(w + 11) << 8) | u8(w + 12);
  EXPECT_EQ(inc + 65535, 16u << 20);
}

TEST(HboneSession, LegitimateChurnWithResetsDoesNotTripFloodProtection) {
  // Peers like nghttpx end every tunnel with RST_STREAM (reliability.md §8): after the 200 and
  // some data, those resets are not abusive and must never kill the shared connection.
  SessionPair p;
  for (int round = 0; round < 40; ++round) {
    std::vector<StreamId> ids;
    for (int i = 0; i < 100; ++i) {
      ids.push_back(p.open());
    }
    p.pump();
    for (StreamId id : ids) {
      auto b = bufferOf("ping");
      ASSERT_TRUE(p.client->send(id, b).has_value());
    }
    p.pump();
    for (StreamId id : ids) {
      p.client->reset(id, round % 2 ? h2::kCancel : h2::kNoError);
    }
    p.pump();
    ASSERT_FALSE(p.server->isDead()) << "round " << round;
  }
  EXPECT_EQ(p.serverObs.requests, 4000);
  EXPECT_FALSE(p.client->isDead());
}

TEST(HboneSession, ObserverMayOpenTunnelsFromCallbacks) {
  // A pool replaces a finished tunnel from inside onStreamClosed; the session must cope with
  // streams being added while it reports a close.
  SessionPair p;
  int replacements = 0;
  p.clientObs.afterClose = [&](StreamId) {
    if (replacements < 300 && p.client->canOpenTunnel()) {
      ++replacements;
      auto id = p.client->openTunnel(testing::requestTo("10.0.0.3:80"));
      ASSERT_TRUE(id.has_value());
      ASSERT_TRUE(p.client->closeWrite(*id).has_value());
    }
  };
  p.serverObs.onRequest = [&](StreamId id, const ConnectRequest&) {
    ASSERT_TRUE(p.server->respond(id, 200).has_value());
    ASSERT_TRUE(p.server->closeWrite(id).has_value());
  };
  for (int i = 0; i < 50; ++i) {
    StreamId id = p.open();
    ASSERT_TRUE(p.client->closeWrite(id).has_value());
  }
  p.pump();
  EXPECT_EQ(replacements, 300);
  EXPECT_EQ(p.serverObs.requests, 350);
  EXPECT_EQ(p.client->activeStreams(), 0u);
  EXPECT_EQ(p.server->activeStreams(), 0u);
}

TEST(HboneSession, BulkTransferWithSmallFramesStaysWithinFloodLimits) {
  // Many small DATA frames and the WINDOW_UPDATEs they cause must not look like a flood.
  SessionConfig cc = SessionConfig::clientDefaults();
  cc.maxSendFramePayload = 1024;
  SessionConfig sc = SessionConfig::serverDefaults();
  sc.maxSendFramePayload = 1024;
  SessionPair p(cc, sc);
  std::vector<StreamId> ids;
  for (int i = 0; i < 10; ++i) {
    ids.push_back(p.open());
  }
  p.pump();
  for (int round = 0; round < 20; ++round) {
    for (StreamId id : ids) {
      auto up = bufferOf(pattern(64 << 10, round));
      ASSERT_TRUE(p.client->send(id, up).has_value());
      auto down = bufferOf(pattern(64 << 10, round + 100));
      ASSERT_TRUE(p.server->send(id, down).has_value());
    }
    p.pump();
  }
  EXPECT_FALSE(p.client->isDead());
  EXPECT_FALSE(p.server->isDead());
  for (StreamId id : ids) {
    EXPECT_EQ(p.serverObs.streams[id].data.size(), 20u * (64 << 10));
    EXPECT_EQ(p.clientObs.streams[id].data.size(), 20u * (64 << 10));
  }
}

}  // namespace
}  // namespace hbone
