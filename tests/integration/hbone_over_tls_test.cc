// HBONE end to end in memory: a client TlsSession + hbone::ClientSession wired to a server
// TlsSession + hbone::ServerSession through ByteBuffers moved by a pump loop (no sockets, no
// threads). Certificates come from TestPki (client default/a, server default/b, one mesh root),
// so the real mTLS handshake and SPIFFE checks run, then HTTP/2 CONNECT tunnels carry the bytes.
//
// What the pump does per round: the client app tops up every open stream's send queue (bounded),
// the client session frames, TLS encrypts into the wire buffer; the server decrypts and receives;
// the server app (echo, or a source/sink) answers; the same way back. Every byte is hashed
// (SHA-256) where it is produced and where it is consumed, and the hashes must match.

#include <openssl/evp.h>

#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "hbone/session.h"
#include "tests/support/test_pki.h"
#include "tests/support/tls_pump.h"
#include "ztunnel/core/byte_buffer.h"
#include "ztunnel/core/sockaddr.h"
#include "ztunnel/tls/tls_session.h"

namespace zt {
namespace {

using Clock = std::chrono::steady_clock;

constexpr size_t kProduceChunk = 256 << 10;  // HTTP/2 output per produce() call
constexpr size_t kAppChunk = 256 << 10;      // what an app hands to send() at once
constexpr size_t kAppQueueLimit = 1 << 20;   // an app stops writing above this many queued bytes
constexpr size_t kWireLimit = 4 << 20;       // ciphertext in flight per direction per round
constexpr uint16_t kEchoPort = 7000;         // server app: echo everything, then EOF
constexpr uint16_t kSourceSinkPort = 7001;   // server app: hash input, send its own bytes

class Sha256 {
 public:
  Sha256() : ctx_(EVP_MD_CTX_new()) { EVP_DigestInit_ex(ctx_, EVP_sha256(), nullptr); }
  ~Sha256() { EVP_MD_CTX_free(ctx_); }
  Sha256(const Sha256&) = delete;
  Sha256& operator=(const Sha256&) = delete;
  void update(std::span<const uint8_t> data) { EVP_DigestUpdate(ctx_, data.data(), data.size()); }
  std::string hex() {
    if (hex_.empty()) {
      unsigned char md[EVP_MAX_MD_SIZE];
      unsigned int len = 0;
      EVP_DigestFinal_ex(ctx_, md, &len);
      static const char* kDigits = "0123456789abcdef";
      for (unsigned int i = 0; i < len; ++i) {
        hex_ += kDigits[md[i] >> 4];
        hex_ += kDigits[md[i] & 15];
      }
    }
    return hex_;
  }

 private:
  EVP_MD_CTX* ctx_;
  std::string hex_;
};

// One shared pseudo-random pattern of prime length, so the chunk boundaries of a stream never
// line up with its repetition; each stream starts at its own offset, so bytes that crossed from
// one stream to another change both hashes.
const std::vector<uint8_t>& sharedPattern() {
  static const std::vector<uint8_t> pattern = [] {
    std::vector<uint8_t> p(1'000'003);
    uint64_t x = 0x2545f4914f6cdd1dull;
    for (size_t i = 0; i < p.size(); i += 8) {
      x += 0x9e3779b97f4a7c15ull;
      uint64_t z = x;
      z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
      z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
      z ^= z >> 31;
      std::memcpy(p.data() + i, &z, std::min<size_t>(8, p.size() - i));
    }
    return p;
  }();
  return pattern;
}

// `total` bytes of the shared pattern from offset seed*7919 mod its length, appended to ByteBuffers
// on demand and hashed as they go out.
class PatternSource {
 public:
  PatternSource(uint64_t seed, size_t total)
      : pos_((seed * 7919) % sharedPattern().size()), remaining_(total) {}
  size_t remaining() const { return remaining_; }
  void fill(ByteBuffer& out, size_t max, Sha256& hash) {
    const auto& p = sharedPattern();
    size_t n = std::min(max, remaining_);
    remaining_ -= n;
    while (n > 0) {
      size_t k = std::min(n, p.size() - pos_);
      std::span<const uint8_t> slice(p.data() + pos_, k);
      out.append(slice);
      hash.update(slice);
      pos_ = (pos_ + k) % p.size();
      n -= k;
    }
  }

 private:
  size_t pos_;
  size_t remaining_;
};

// The client app's view of one tunnel.
struct ClientStream {
  explicit ClientStream(uint64_t seed, size_t upBytes) : up(seed, upBytes) {}
  PatternSource up;
  Sha256 sent;
  Sha256 received;
  size_t receivedBytes = 0;
  int status = 0;
  bool writeClosed = false;
  bool eof = false;
  bool closed = false;
  std::optional<uint32_t> reset;
};

// The server app's view of one tunnel.
struct ServerStream {
  ServerStream(uint16_t mode, uint64_t seed, size_t downBytes)
      : mode(mode), down(seed, downBytes) {}
  uint16_t mode;
  PatternSource down;  // kSourceSinkPort only
  Sha256 received;
  Sha256 sent;
  size_t receivedBytes = 0;
  size_t unconsumed = 0;  // echo: bytes received and re-sent, window not yet given back
  bool eof = false;
  bool writeClosed = false;
  bool closed = false;
  std::optional<uint32_t> reset;
};

// Client TLS + HTTP/2 session, server TLS + HTTP/2 session, and the wire between them. The two
// observers forward to the Link's client-app and server-app handlers.
class Link {
 public:
  // Server app mode kSourceSinkPort sends `serverBytes` on each such tunnel.
  explicit Link(size_t serverBytes = 0)
      : serverBytes_(serverBytes), clientObs_(*this), serverObs_(*this) {}

  void connect() {
    auto clientTls = tls::TlsSession::client(pki_.clientContext("default", "a"),
                                             {pki_.identity("default", "b")});
    auto serverTls = tls::TlsSession::server(pki_.serverContext("default", "b"));
    ASSERT_TRUE(clientTls.has_value()) << clientTls.error().message();
    ASSERT_TRUE(serverTls.has_value()) << serverTls.error().message();
    ctls_ = std::move(*clientTls);
    stls_ = std::move(*serverTls);
    auto outcome = testing::pumpHandshake(*ctls_, *stls_, 16, &clientPlainIn_, &serverPlainIn_);
    ASSERT_TRUE(outcome.succeeded())
        << "client: " << (outcome.client ? "ok" : outcome.client.error().message())
        << " server: " << (outcome.server ? "ok" : outcome.server.error().message());
    ASSERT_EQ(ctls_->peerIdentity()->toUri(), "spiffe://cluster.local/ns/default/sa/b");
    ASSERT_EQ(stls_->peerIdentity()->toUri(), "spiffe://cluster.local/ns/default/sa/a");
    ASSERT_EQ(ctls_->alpn(), "h2");

    auto client = hbone::ClientSession::create(hbone::SessionConfig::clientDefaults(), clientObs_);
    auto server = hbone::ServerSession::create(hbone::SessionConfig::serverDefaults(), serverObs_);
    ASSERT_TRUE(client.has_value()) << client.error().message();
    ASSERT_TRUE(server.has_value()) << server.error().message();
    client_ = std::move(*client);
    server_ = std::move(*server);
  }

  // Opens a tunnel to 10.0.0.2:<port> that will send `upBytes` then half-close.
  hbone::StreamId open(uint16_t port, uint64_t seed, size_t upBytes) {
    hbone::ConnectRequest req;
    req.authority = hbone::Authority::ofAddress(SocketAddress(*IpAddress::parse("10.0.0.2"), port));
    req.traceparent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-00";
    auto id = client_->openTunnel(req);
    EXPECT_TRUE(id.has_value()) << id.error().message();
    if (!id) {
      return -1;
    }
    clientStreams_.emplace(std::piecewise_construct, std::forward_as_tuple(*id),
                           std::forward_as_tuple(seed, upBytes));
    seeds_[*id] = seed;
    return *id;
  }

  // Pumps until every client stream is closed, nothing moves, or the time budget is spent.
  // Returns false (with a failure recorded) on an error, a stall or a timeout.
  bool run(Clock::duration budget) {
    const auto deadline = Clock::now() + budget;
    int idle = 0;
    while (Clock::now() < deadline) {
      if (allClosed()) {
        return true;
      }
      maxActive_ = std::max(maxActive_, client_->activeStreams());
      bool progress = false;
      if (!round(progress)) {
        return false;
      }
      idle = progress ? 0 : idle + 1;
      if (idle > 3) {
        ADD_FAILURE() << "the pump stalled with " << openStreams() << " streams open";
        return false;
      }
    }
    ADD_FAILURE() << "the pump did not finish within the time budget; " << openStreams()
                  << " streams open";
    return false;
  }

  std::map<hbone::StreamId, ClientStream>& clientStreams() { return clientStreams_; }
  std::map<hbone::StreamId, ServerStream>& serverStreams() { return serverStreams_; }
  uint64_t wireBytes() const { return wireBytes_; }
  // Most client streams open at once during run().
  size_t maxActiveStreams() const { return maxActive_; }
  int goaways() const { return clientObs_.goaways; }

 private:
  // The client app.
  struct ClientObs : hbone::ClientObserver {
    explicit ClientObs(Link& l) : link(l) {}
    Link& link;
    int goaways = 0;
    void onTunnelResponse(hbone::StreamId id, int status) override {
      link.clientStreams_.at(id).status = status;
    }
    void onData(hbone::StreamId id, std::span<const uint8_t> data) override {
      auto& s = link.clientStreams_.at(id);
      s.received.update(data);
      s.receivedBytes += data.size();
      link.client_->consume(id, data.size());
    }
    void onEndOfStream(hbone::StreamId id) override { link.clientStreams_.at(id).eof = true; }
    void onStreamReset(hbone::StreamId id, uint32_t code) override {
      link.clientStreams_.at(id).reset = code;
    }
    void onStreamClosed(hbone::StreamId id) override { link.clientStreams_.at(id).closed = true; }
    void onStreamWritable(hbone::StreamId) override {}
    void onGoaway() override { ++goaways; }
  };

  // The server app: echo (kEchoPort) or source + sink (kSourceSinkPort).
  struct ServerObs : hbone::ServerObserver {
    explicit ServerObs(Link& l) : link(l) {}
    Link& link;
    void onConnectRequest(hbone::StreamId id, hbone::ConnectRequest&& request) override {
      uint16_t port = request.authority.port();
      EXPECT_TRUE(port == kEchoPort || port == kSourceSinkPort) << request.authority.toString();
      // Client and server see the same stream ids on one connection.
      link.serverStreams_.emplace(
          std::piecewise_construct, std::forward_as_tuple(id),
          std::forward_as_tuple(port, link.seeds_[id] * 31 + 17,
                                port == kSourceSinkPort ? link.serverBytes_ : 0));
      EXPECT_TRUE(link.server_->respond(id, 200).has_value());
    }
    void onData(hbone::StreamId id, std::span<const uint8_t> data) override {
      link.serverData(id, data);
    }
    void onEndOfStream(hbone::StreamId id) override {
      auto& s = link.serverStreams_.at(id);
      s.eof = true;
      if (s.mode == kEchoPort) {
        // Echo the EOF after the echoed bytes (END_STREAM follows the queue).
        EXPECT_TRUE(link.server_->closeWrite(id).has_value());
        s.writeClosed = true;
      }
    }
    void onStreamReset(hbone::StreamId id, uint32_t code) override {
      link.serverStreams_.at(id).reset = code;
    }
    void onStreamClosed(hbone::StreamId id) override { link.serverStreams_.at(id).closed = true; }
    void onStreamWritable(hbone::StreamId) override {}
  };

  void serverData(hbone::StreamId id, std::span<const uint8_t> data) {
    auto& s = serverStreams_.at(id);
    s.received.update(data);
    s.receivedBytes += data.size();
    if (s.mode == kEchoPort) {
      ByteBuffer b;
      b.append(data);
      s.sent.update(data);
      EXPECT_TRUE(server_->send(id, b).has_value());
      s.unconsumed += data.size();  // given back once the echo queue drained (backpressure)
    } else {
      server_->consume(id, data.size());
    }
  }

  bool allClosed() const {
    return std::all_of(clientStreams_.begin(), clientStreams_.end(),
                       [](const auto& kv) { return kv.second.closed; });
  }
  size_t openStreams() const {
    return std::count_if(clientStreams_.begin(), clientStreams_.end(),
                         [](const auto& kv) { return !kv.second.closed; });
  }

  // One pass of both apps and both directions of the wire.
  bool round(bool& progress) {
    // Client app: keep every established stream's queue topped up, half-close when done.
    for (auto& [id, s] : clientStreams_) {
      if (s.closed || s.writeClosed || s.status != 200) {
        continue;
      }
      if (s.up.remaining() > 0 && client_->queuedBytes(id) < kAppQueueLimit) {
        ByteBuffer b;
        s.up.fill(b, kAppChunk, s.sent);
        if (auto st = client_->send(id, b); !st) {
          ADD_FAILURE() << "client send on " << id << ": " << st.error().message();
          return false;
        }
        progress = true;
      }
      if (s.up.remaining() == 0) {
        if (auto st = client_->closeWrite(id); !st) {
          ADD_FAILURE() << "client closeWrite on " << id << ": " << st.error().message();
          return false;
        }
        s.writeClosed = true;
        progress = true;
      }
    }
    // Server app: source streams send their bytes; echo streams give window back once their
    // echo is framed.
    for (auto& [id, s] : serverStreams_) {
      if (s.closed) {
        continue;
      }
      if (s.mode == kSourceSinkPort && !s.writeClosed &&
          server_->queuedBytes(id) < kAppQueueLimit) {
        if (s.down.remaining() > 0) {
          ByteBuffer b;
          s.down.fill(b, kAppChunk, s.sent);
          if (auto st = server_->send(id, b); !st) {
            ADD_FAILURE() << "server send on " << id << ": " << st.error().message();
            return false;
          }
          progress = true;
        }
        if (s.down.remaining() == 0) {
          EXPECT_TRUE(server_->closeWrite(id).has_value());
          s.writeClosed = true;
          progress = true;
        }
      }
      if (s.unconsumed > 0 && server_->queuedBytes(id) < kAppQueueLimit) {
        server_->consume(id, s.unconsumed);
        s.unconsumed = 0;
        progress = true;
      }
    }
    // Client -> server.
    if (!produce(true, progress) || !deliver(true, progress)) {
      return false;
    }
    // Server -> client.
    if (!produce(false, progress) || !deliver(false, progress)) {
      return false;
    }
    return true;
  }

  bool produce(bool fromClient, bool& progress) {
    ByteBuffer& plain = fromClient ? clientPlainOut_ : serverPlainOut_;
    ByteBuffer& wire = fromClient ? toServer_ : toClient_;
    tls::TlsSession& tlsSession = fromClient ? *ctls_ : *stls_;
    while (wire.size() < kWireLimit) {
      bool wants = fromClient ? client_->wantsWrite() : server_->wantsWrite();
      if (!wants) {
        break;
      }
      Status st = fromClient ? client_->produce(plain, kProduceChunk)
                             : server_->produce(plain, kProduceChunk);
      if (!st) {
        ADD_FAILURE() << (fromClient ? "client" : "server") << " produce: " << st.error().message();
        return false;
      }
      if (plain.empty()) {
        break;
      }
      if (Status w = tlsSession.write(plain, wire); !w) {
        ADD_FAILURE() << (fromClient ? "client" : "server")
                      << " TLS write: " << w.error().message();
        return false;
      }
      progress = true;
    }
    return true;
  }

  bool deliver(bool toServer, bool& progress) {
    ByteBuffer& wire = toServer ? toServer_ : toClient_;
    if (wire.empty()) {
      return true;
    }
    wireBytes_ += wire.size();
    progress = true;
    tls::TlsSession& tlsSession = toServer ? *stls_ : *ctls_;
    ByteBuffer& plainIn = toServer ? serverPlainIn_ : clientPlainIn_;
    ByteBuffer& reply = toServer ? toClient_ : toServer_;
    auto fed = tlsSession.feed(wire, plainIn, reply);
    if (!fed) {
      ADD_FAILURE() << (toServer ? "server" : "client") << " TLS feed: " << fed.error().message();
      return false;
    }
    while (!plainIn.empty()) {
      auto chunk = plainIn.front();
      Status st = toServer ? server_->receive(chunk) : client_->receive(chunk);
      plainIn.drain(chunk.size());
      if (!st) {
        ADD_FAILURE() << (toServer ? "server" : "client") << " receive: " << st.error().message();
        return false;
      }
    }
    return true;
  }

  testing::TestPki pki_;
  size_t serverBytes_;
  ClientObs clientObs_;  // before the sessions: observers outlive them
  ServerObs serverObs_;
  std::unique_ptr<tls::TlsSession> ctls_;
  std::unique_ptr<tls::TlsSession> stls_;
  std::unique_ptr<hbone::ClientSession> client_;
  std::unique_ptr<hbone::ServerSession> server_;
  ByteBuffer toServer_;
  ByteBuffer toClient_;
  ByteBuffer clientPlainIn_;
  ByteBuffer serverPlainIn_;
  ByteBuffer clientPlainOut_;
  ByteBuffer serverPlainOut_;
  std::map<hbone::StreamId, ClientStream> clientStreams_;
  std::map<hbone::StreamId, ServerStream> serverStreams_;
  std::map<hbone::StreamId, uint64_t> seeds_;
  uint64_t wireBytes_ = 0;
  size_t maxActive_ = 0;
};

TEST(HboneOverTls, HundredConcurrentTunnelsEchoOneMebibyteEach) {
  constexpr int kTunnels = 100;
  constexpr size_t kBytes = 1 << 20;
  Link link;
  ASSERT_NO_FATAL_FAILURE(link.connect());
  for (int i = 0; i < kTunnels; ++i) {
    ASSERT_GE(link.open(kEchoPort, static_cast<uint64_t>(i), kBytes), 0);
  }
  ASSERT_TRUE(link.run(std::chrono::seconds(50)));
  ASSERT_EQ(link.clientStreams().size(), static_cast<size_t>(kTunnels));
  ASSERT_EQ(link.serverStreams().size(), static_cast<size_t>(kTunnels));
  for (auto& [id, c] : link.clientStreams()) {
    auto& s = link.serverStreams().at(id);
    EXPECT_EQ(c.status, 200) << "stream " << id;
    EXPECT_FALSE(c.reset.has_value()) << "stream " << id << " reset " << *c.reset;
    EXPECT_FALSE(s.reset.has_value()) << "stream " << id;
    EXPECT_TRUE(c.eof && s.eof) << "stream " << id;
    EXPECT_EQ(s.receivedBytes, kBytes) << "stream " << id;
    EXPECT_EQ(c.receivedBytes, kBytes) << "stream " << id;
    std::string sent = c.sent.hex();
    EXPECT_EQ(s.received.hex(), sent) << "server got other bytes on stream " << id;
    EXPECT_EQ(c.received.hex(), sent) << "echo differs on stream " << id;
  }
  // Distinct streams carried distinct bytes (the hashes above would not catch a swap of two
  // identical streams).
  EXPECT_NE(link.clientStreams().begin()->second.sent.hex(),
            std::next(link.clientStreams().begin())->second.sent.hex());
  EXPECT_EQ(link.maxActiveStreams(), static_cast<size_t>(kTunnels)) << "not all concurrent";
  EXPECT_GE(link.wireBytes(), 2u * kTunnels * kBytes);
  EXPECT_EQ(link.goaways(), 0);
}

// One tunnel, 256 MiB in each direction at once (client source -> server sink, server source ->
// client sink), byte-exact by SHA-256.
TEST(HboneOverTls, QuarterGibibyteBothWaysOnOneTunnel) {
  constexpr size_t kBytes = 256u << 20;
  Link link(kBytes);
  ASSERT_NO_FATAL_FAILURE(link.connect());
  auto id = link.open(kSourceSinkPort, 42, kBytes);
  ASSERT_GE(id, 0);
  auto start = Clock::now();
  ASSERT_TRUE(link.run(std::chrono::seconds(55)));
  double seconds = std::chrono::duration<double>(Clock::now() - start).count();
  auto& c = link.clientStreams().at(id);
  auto& s = link.serverStreams().at(id);
  EXPECT_EQ(c.status, 200);
  EXPECT_FALSE(c.reset.has_value());
  EXPECT_FALSE(s.reset.has_value());
  EXPECT_TRUE(c.eof && s.eof);
  EXPECT_EQ(s.receivedBytes, kBytes);
  EXPECT_EQ(c.receivedBytes, kBytes);
  EXPECT_EQ(s.received.hex(), c.sent.hex()) << "client -> server bytes differ";
  EXPECT_EQ(c.received.hex(), s.sent.hex()) << "server -> client bytes differ";
  EXPECT_NE(c.sent.hex(), s.sent.hex());
  RecordProperty("seconds", std::to_string(seconds));
  std::printf("512 MiB (256 MiB each way) through TLS + HTTP/2 in memory: %.2f s\n", seconds);
}

}  // namespace
}  // namespace zt
