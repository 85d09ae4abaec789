#pragma once

// In-memory harness for hbone session tests: recording observers, a client/server pair wired
// through ByteBuffers, a raw nghttp2 client for requests our ClientSession would never send, and a
// frame writer for hand-assembled (abusive) peers.

#include <gtest/gtest.h>
#include <nghttp2/nghttp2.h>

#include <algorithm>
#include <cstring>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include "hbone/session.h"

namespace hbone::testing {

// Deterministic pseudo-random bytes (splitmix64; cheap even in Debug builds).
inline std::string pattern(size_t n, uint64_t seed) {
  std::string s(n, '\0');
  uint64_t x = seed * 0x9e3779b97f4a7c15ull + 1;
  for (size_t i = 0; i < n; i += 8) {
    x += 0x9e3779b97f4a7c15ull;
    uint64_t z = x;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    z ^= z >> 31;
    std::memcpy(s.data() + i, &z, std::min<size_t>(8, n - i));
  }
  return s;
}

inline zt::ByteBuffer bufferOf(std::string_view s) {
  zt::ByteBuffer b;
  b.append(s);
  return b;
}

inline ConnectRequest requestTo(std::string_view authority) {
  ConnectRequest r;
  r.authority = *Authority::parse(authority);
  r.baggage = "k8s.cluster.name=Kubernetes,k8s.namespace.name=default";
  r.forwarded = "for=\"10.0.0.1:40000\"";
  r.traceparent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-00";
  return r;
}

struct StreamLog {
  int status = 0;
  std::string baggage;
  std::optional<ConnectRequest> request;
  std::string data;
  bool eof = false;
  std::optional<uint32_t> resetCode;
  bool closed = false;
  int writable = 0;
  std::vector<std::string> events;
};

// The stream callbacks both recorders share: every event is logged per stream, data is kept and
// (autoConsume) consumed at once, afterClose runs after a stream's last callback.
template <class Observer, class Session>
class StreamRecorder : public Observer {
 public:
  Session* session = nullptr;
  bool autoConsume = true;
  std::map<StreamId, StreamLog> streams;
  std::function<void(StreamId)> afterClose;

  void onData(StreamId id, std::span<const uint8_t> data) override {
    auto& s = streams[id];
    if (s.events.empty() || s.events.back() != "data") {
      s.events.push_back("data");
    }
    s.data.append(reinterpret_cast<const char*>(data.data()), data.size());
    if (autoConsume) {
      session->consume(id, data.size());
    }
  }
  void onEndOfStream(StreamId id) override {
    streams[id].eof = true;
    streams[id].events.push_back("eof");
  }
  void onStreamReset(StreamId id, uint32_t code) override {
    streams[id].resetCode = code;
    streams[id].events.push_back("reset:" + std::to_string(code));
  }
  void onStreamClosed(StreamId id) override {
    streams[id].closed = true;
    streams[id].events.push_back("closed");
    if (afterClose) {
      afterClose(id);
    }
  }
  void onStreamWritable(StreamId id) override { ++streams[id].writable; }
};

class RecordingClient : public StreamRecorder<ClientObserver, ClientSession> {
 public:
  int goaways = 0;

  void onTunnelResponse(StreamId id, int status) override {
    streams[id].status = status;
    streams[id].events.push_back("response:" + std::to_string(status));
  }
  void onResponseBaggage(StreamId id, std::string_view baggage) override {
    streams[id].baggage = std::string(baggage);
  }
  void onGoaway() override { ++goaways; }
};

class RecordingServer : public StreamRecorder<ServerObserver, ServerSession> {
 public:
  // Called for each CONNECT; default answers 200 right away.
  std::function<void(StreamId, const ConnectRequest&)> onRequest = [this](StreamId id,
                                                                          const ConnectRequest&) {
    ASSERT_TRUE(session->respond(id, 200).has_value());
  };
  int requests = 0;

  void onConnectRequest(StreamId id, ConnectRequest&& request) override {
    ++requests;
    streams[id].request = request;
    streams[id].events.push_back("request");
    if (onRequest) {
      onRequest(id, *streams[id].request);
    }
  }
};

// Feeds every byte of `buf` to `receive` (block by block, as a transport would) and drains it.
template <class Session>
zt::Status feed(Session& session, zt::ByteBuffer& buf) {
  while (!buf.empty()) {
    auto front = buf.front();
    auto st = session.receive(front);
    buf.drain(front.size());
    if (!st) {
      buf.clear();
      return st;
    }
  }
  return zt::ok();
}

// A ClientSession and a ServerSession connected back to back in memory.
class SessionPair {
 public:
  explicit SessionPair(SessionConfig clientConfig = SessionConfig::clientDefaults(),
                       SessionConfig serverConfig = SessionConfig::serverDefaults()) {
    auto c = ClientSession::create(clientConfig, clientObs);
    auto s = ServerSession::create(serverConfig, serverObs);
    EXPECT_TRUE(c.has_value());
    EXPECT_TRUE(s.has_value());
    client = std::move(*c);
    server = std::move(*s);
    clientObs.session = client.get();
    serverObs.session = server.get();
  }

  // Moves bytes both ways until neither side has anything to say (or maxRounds).
  void pump(int maxRounds = 100000) {
    for (int i = 0; i < maxRounds; ++i) {
      bool progress = false;
      if (client->wantsWrite()) {
        zt::ByteBuffer buf;
        if (auto st = client->produce(buf, kChunk); !st) {
          clientError = st.error();
        }
        progress |= !buf.empty();
        c2sBytes += buf.size();
        if (!cutClientToServer && !server->isDead()) {
          if (auto st = feed(*server, buf); !st) {
            serverError = st.error();
          }
        }
      }
      if (server->wantsWrite()) {
        zt::ByteBuffer buf;
        if (auto st = server->produce(buf, kChunk); !st) {
          serverError = st.error();
        }
        progress |= !buf.empty();
        s2cBytes += buf.size();
        if (!cutServerToClient && !client->isDead()) {
          if (auto st = feed(*client, buf); !st) {
            clientError = st.error();
          }
        }
      }
      if (!progress) {
        return;
      }
    }
    ADD_FAILURE() << "pump did not settle";
  }

  StreamId open(std::string_view authority = "10.0.0.2:8080") {
    auto id = client->openTunnel(requestTo(authority));
    EXPECT_TRUE(id.has_value());
    return id ? *id : -1;
  }

  static constexpr size_t kChunk = 256 * 1024;
  RecordingClient clientObs;
  RecordingServer serverObs;
  std::unique_ptr<ClientSession> client;
  std::unique_ptr<ServerSession> server;
  bool cutClientToServer = false;
  bool cutServerToClient = false;
  uint64_t c2sBytes = 0;
  uint64_t s2cBytes = 0;
  std::optional<zt::Error> clientError;
  std::optional<zt::Error> serverError;
};

// Hand-assembled HTTP/2 frames (with an HPACK deflater for header blocks) for abusive peers.
class FrameWriter {
 public:
  FrameWriter() { nghttp2_hd_deflate_new(&deflater_, 4096); }
  ~FrameWriter() { nghttp2_hd_deflate_del(deflater_); }
  FrameWriter(const FrameWriter&) = delete;
  FrameWriter& operator=(const FrameWriter&) = delete;

  static std::string preface() {
    return std::string(NGHTTP2_CLIENT_MAGIC, NGHTTP2_CLIENT_MAGIC_LEN);
  }

  static std::string frame(uint8_t type, uint8_t flags, uint32_t stream, std::string_view payload) {
    std::string f;
    uint32_t len = static_cast<uint32_t>(payload.size());
    f += static_cast<char>(len >> 16);
    f += static_cast<char>(len >> 8);
    f += static_cast<char>(len);
    f += static_cast<char>(type);
    f += static_cast<char>(flags);
    f += static_cast<char>((stream >> 24) & 0x7f);
    f += static_cast<char>(stream >> 16);
    f += static_cast<char>(stream >> 8);
    f += static_cast<char>(stream);
    f += payload;
    return f;
  }

  static std::string settings(const std::vector<std::pair<uint16_t, uint32_t>>& entries = {}) {
    std::string p;
    for (auto [id, v] : entries) {
      p += static_cast<char>(id >> 8);
      p += static_cast<char>(id);
      p += static_cast<char>(v >> 24);
      p += static_cast<char>(v >> 16);
      p += static_cast<char>(v >> 8);
      p += static_cast<char>(v);
    }
    return frame(NGHTTP2_SETTINGS, 0, 0, p);
  }
  static std::string settingsAck() { return frame(NGHTTP2_SETTINGS, NGHTTP2_FLAG_ACK, 0, ""); }
  static std::string ping(uint8_t seed) {
    return frame(NGHTTP2_PING, 0, 0, std::string(8, static_cast<char>(seed)));
  }
  static std::string rst(uint32_t stream, uint32_t code) {
    std::string p;
    p += static_cast<char>(code >> 24);
    p += static_cast<char>(code >> 16);
    p += static_cast<char>(code >> 8);
    p += static_cast<char>(code);
    return frame(NGHTTP2_RST_STREAM, 0, stream, p);
  }
  static std::string data(uint32_t stream, std::string_view payload, bool endStream = false) {
    return frame(NGHTTP2_DATA, endStream ? NGHTTP2_FLAG_END_STREAM : 0, stream, payload);
  }

  // An HPACK header block for the given fields.
  std::string block(const std::vector<std::pair<std::string, std::string>>& fields) {
    std::vector<nghttp2_nv> nva;
    for (auto& [n, v] : fields) {
      nva.push_back({reinterpret_cast<uint8_t*>(const_cast<char*>(n.data())),
                     reinterpret_cast<uint8_t*>(const_cast<char*>(v.data())), n.size(), v.size(),
                     NGHTTP2_NV_FLAG_NONE});
    }
    std::string out(nghttp2_hd_deflate_bound(deflater_, nva.data(), nva.size()), '\0');
    ssize_t n = nghttp2_hd_deflate_hd(deflater_, reinterpret_cast<uint8_t*>(out.data()), out.size(),
                                      nva.data(), nva.size());
    EXPECT_GE(n, 0);
    out.resize(n < 0 ? 0 : static_cast<size_t>(n));
    return out;
  }

  std::string headers(uint32_t stream,
                      const std::vector<std::pair<std::string, std::string>>& fields,
                      bool endStream = false) {
    uint8_t flags = NGHTTP2_FLAG_END_HEADERS | (endStream ? NGHTTP2_FLAG_END_STREAM : 0);
    return frame(NGHTTP2_HEADERS, flags, stream, block(fields));
  }

  std::string connect(uint32_t stream, std::string authority = "10.0.0.2:8080") {
    return headers(stream, {{":method", "CONNECT"}, {":authority", authority}});
  }

 private:
  nghttp2_hd_deflater* deflater_ = nullptr;
};

// A raw nghttp2 client session: sends whatever header lists a test asks for and records the
// response status per stream. Data can be attached to a request (sent right after HEADERS).
class RawClient {
 public:
  RawClient() {
    nghttp2_session_callbacks* cbs;
    nghttp2_session_callbacks_new(&cbs);
    nghttp2_session_callbacks_set_on_header_callback(cbs, &RawClient::onHeader);
    nghttp2_session_callbacks_set_on_stream_close_callback(cbs, &RawClient::onClose);
    nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cbs, &RawClient::onData);
    nghttp2_session_client_new(&session_, cbs, this);
    nghttp2_session_callbacks_del(cbs);
    nghttp2_settings_entry iv[] = {{NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, 1 << 20}};
    nghttp2_submit_settings(session_, NGHTTP2_FLAG_NONE, iv, 1);
  }
  ~RawClient() { nghttp2_session_del(session_); }
  RawClient(const RawClient&) = delete;
  RawClient& operator=(const RawClient&) = delete;

  int32_t request(const std::vector<std::pair<std::string, std::string>>& fields,
                  std::string body = {}, bool endStream = false) {
    std::vector<nghttp2_nv> nva;
    for (auto& [n, v] : fields) {
      nva.push_back({reinterpret_cast<uint8_t*>(const_cast<char*>(n.data())),
                     reinterpret_cast<uint8_t*>(const_cast<char*>(v.data())), n.size(), v.size(),
                     NGHTTP2_NV_FLAG_NONE});
    }
    auto b = std::make_unique<Body>();
    b->bytes = std::move(body);
    b->end = endStream;
    nghttp2_data_provider prd{};
    prd.source.ptr = b.get();
    prd.read_callback = &RawClient::onRead;
    bool withBody = !b->bytes.empty() || !endStream;
    int32_t id = nghttp2_submit_request(session_, nullptr, nva.data(), nva.size(),
                                        withBody ? &prd : nullptr, nullptr);
    bodies_.push_back(std::move(b));
    return id;
  }
  void rst(int32_t id, uint32_t code) {
    nghttp2_submit_rst_stream(session_, NGHTTP2_FLAG_NONE, id, code);
  }

  // Serialises everything pending.
  std::string out() {
    std::string s;
    while (true) {
      const uint8_t* data;
      ssize_t n = nghttp2_session_mem_send(session_, &data);
      if (n <= 0) {
        break;
      }
      s.append(reinterpret_cast<const char*>(data), static_cast<size_t>(n));
    }
    return s;
  }
  void in(zt::ByteBuffer& buf) {
    while (!buf.empty()) {
      auto f = buf.front();
      ssize_t n = nghttp2_session_mem_recv(session_, f.data(), f.size());
      EXPECT_GE(n, 0);
      buf.drain(f.size());
    }
  }

  std::map<int32_t, int> status;
  std::map<int32_t, uint32_t> closeCode;
  std::map<int32_t, std::string> data;
  nghttp2_session* session_ = nullptr;

 private:
  struct Body {
    std::string bytes;
    size_t offset = 0;
    bool end = false;
  };
  static ssize_t onRead(nghttp2_session*, int32_t, uint8_t* buf, size_t length, uint32_t* flags,
                        nghttp2_data_source* source, void*) {
    auto* b = static_cast<Body*>(source->ptr);
    size_t n = std::min(length, b->bytes.size() - b->offset);
    std::memcpy(buf, b->bytes.data() + b->offset, n);
    b->offset += n;
    if (b->offset == b->bytes.size()) {
      if (b->end) {
        *flags |= NGHTTP2_DATA_FLAG_EOF;
      } else if (n == 0) {
        return NGHTTP2_ERR_DEFERRED;
      }
    }
    return static_cast<ssize_t>(n);
  }
  static int onHeader(nghttp2_session*, const nghttp2_frame* frame, const uint8_t* name,
                      size_t namelen, const uint8_t* value, size_t valuelen, uint8_t, void* ud) {
    auto* self = static_cast<RawClient*>(ud);
    if (std::string_view(reinterpret_cast<const char*>(name), namelen) == ":status") {
      self->status[frame->hd.stream_id] =
          std::stoi(std::string(reinterpret_cast<const char*>(value), valuelen));
    }
    return 0;
  }
  static int onClose(nghttp2_session*, int32_t id, uint32_t code, void* ud) {
    static_cast<RawClient*>(ud)->closeCode[id] = code;
    return 0;
  }
  static int onData(nghttp2_session*, uint8_t, int32_t id, const uint8_t* data, size_t len,
                    void* ud) {
    static_cast<RawClient*>(ud)->data[id].append(reinterpret_cast<const char*>(data), len);
    return 0;
  }
  std::vector<std::unique_ptr<Body>> bodies_;
};

// Drives a RawClient against a ServerSession until quiet.
inline void pumpRaw(RawClient& raw, ServerSession& server, int rounds = 1000) {
  for (int i = 0; i < rounds; ++i) {
    std::string c2s = raw.out();
    if (!c2s.empty() && !server.isDead()) {
      zt::ByteBuffer b = bufferOf(c2s);
      (void)feed(server, b);
    }
    zt::ByteBuffer s2c;
    if (server.wantsWrite()) {
      (void)server.produce(s2c, 1 << 20);
    }
    bool progress = !c2s.empty() || !s2c.empty();
    raw.in(s2c);
    if (!progress) {
      return;
    }
  }
}

}  // namespace hbone::testing
