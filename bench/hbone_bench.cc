// HBONE framing micro-benchmarks: a ClientSession wired to a ServerSession in memory (no TLS, no
// sockets), so the figures are the cost of HTTP/2 framing, flow control and our copies alone.
//
//   BM_Hbone_Relay/<chunk>/<frame>: one tunnel; each iteration queues <chunk> bytes on the client
//     (one copy in, as a socket read would), frames them with DATA payloads of at most <frame>
//     bytes, hands the output to the server block by block (as TLS records would be) and the
//     server consumes them (WINDOW_UPDATEs flow back). Bytes/s = tunnel payload.
//   BM_Hbone_OpenStream: CONNECT + 200 + half-close both ways on an established connection;
//     items/s = tunnels opened and fully closed per second.
//
// Run (Release): build-rel/bench/zt_bench --benchmark_filter=BM_Hbone

#include <benchmark/benchmark.h>

#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "hbone/session.h"

namespace {

class CountingClient : public hbone::ClientObserver {
 public:
  hbone::ClientSession* session = nullptr;
  uint64_t received = 0;
  int responses = 0;
  int closed = 0;
  void onTunnelResponse(hbone::StreamId, int) override { ++responses; }
  void onData(hbone::StreamId id, std::span<const uint8_t> data) override {
    received += data.size();
    session->consume(id, data.size());
  }
  void onEndOfStream(hbone::StreamId) override {}
  void onStreamReset(hbone::StreamId, uint32_t) override {}
  void onStreamClosed(hbone::StreamId) override { ++closed; }
  void onStreamWritable(hbone::StreamId) override {}
  void onGoaway() override {}
};

class CountingServer : public hbone::ServerObserver {
 public:
  hbone::ServerSession* session = nullptr;
  uint64_t received = 0;
  void onConnectRequest(hbone::StreamId id, hbone::ConnectRequest&&) override {
    (void)session->respond(id, 200);
  }
  void onData(hbone::StreamId id, std::span<const uint8_t> data) override {
    received += data.size();
    session->consume(id, data.size());
  }
  void onEndOfStream(hbone::StreamId id) override { (void)session->closeWrite(id); }
  void onStreamReset(hbone::StreamId, uint32_t) override {}
  void onStreamClosed(hbone::StreamId) override {}
  void onStreamWritable(hbone::StreamId) override {}
};

struct Pair {
  explicit Pair(uint32_t framePayload = hbone::SessionConfig{}.maxSendFramePayload) {
    auto cc = hbone::SessionConfig::clientDefaults();
    auto sc = hbone::SessionConfig::serverDefaults();
    cc.maxSendFramePayload = framePayload;
    sc.maxSendFramePayload = framePayload;
    client = std::move(*hbone::ClientSession::create(cc, clientObs));
    server = std::move(*hbone::ServerSession::create(sc, serverObs));
    clientObs.session = client.get();
    serverObs.session = server.get();
  }

  template <class Session>
  static void feed(Session& s, zt::ByteBuffer& buf) {
    while (!buf.empty()) {
      auto f = buf.front();
      if (!s.receive(f)) {
        std::abort();
      }
      buf.drain(f.size());
    }
  }

  // Moves everything pending both ways, 256 KiB of output per produce() call.
  void pump() {
    bool progress = true;
    while (progress) {
      progress = false;
      while (client->wantsWrite()) {
        if (!client->produce(c2s, 256 * 1024) || c2s.empty()) {
          break;
        }
        progress = true;
        feed(*server, c2s);
      }
      while (server->wantsWrite()) {
        if (!server->produce(s2c, 256 * 1024) || s2c.empty()) {
          break;
        }
        progress = true;
        feed(*client, s2c);
      }
    }
  }

  CountingClient clientObs;
  CountingServer serverObs;
  std::unique_ptr<hbone::ClientSession> client;
  std::unique_ptr<hbone::ServerSession> server;
  zt::ByteBuffer c2s;
  zt::ByteBuffer s2c;
};

hbone::ConnectRequest request() {
  hbone::ConnectRequest r;
  r.authority = *hbone::Authority::parse("10.0.0.2:8080");
  r.baggage = "k8s.cluster.name=Kubernetes,k8s.namespace.name=default,k8s.deployment.name=sleep";
  r.forwarded = "for=\"10.0.0.1:40000\"";
  r.traceparent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-00";
  return r;
}

void BM_Hbone_Relay(benchmark::State& state) {
  const size_t chunk = static_cast<size_t>(state.range(0));
  Pair p(static_cast<uint32_t>(state.range(1)));
  auto id = p.client->openTunnel(request());
  if (!id) {
    state.SkipWithError("openTunnel failed");
    return;
  }
  p.pump();
  std::vector<uint8_t> source(chunk);
  for (size_t i = 0; i < chunk; ++i) {
    source[i] = static_cast<uint8_t>(i * 131);
  }
  zt::ByteBuffer in;
  for (auto _ : state) {
    in.append(source);  // the socket read into the relay's buffer
    if (!p.client->send(*id, in)) {
      state.SkipWithError("send failed");
      return;
    }
    p.pump();
  }
  if (p.serverObs.received != chunk * state.iterations()) {
    state.SkipWithError("bytes lost");
  }
  state.SetBytesProcessed(static_cast<int64_t>(chunk * state.iterations()));
}
BENCHMARK(BM_Hbone_Relay)
    ->ArgNames({"chunk", "frame"})
    ->ArgsProduct({{64 << 10, 256 << 10, 1 << 20}, {16 << 10, 64 << 10, 256 << 10, 1 << 20}});

void BM_Hbone_OpenStream(benchmark::State& state) {
  Pair p;
  p.pump();
  for (auto _ : state) {
    auto id = p.client->openTunnel(request());
    if (!id) {
      state.SkipWithError("openTunnel failed");
      return;
    }
    p.pump();                         // CONNECT -> 200
    (void)p.client->closeWrite(*id);  // END_STREAM -> server half-closes back
    p.pump();
  }
  if (p.clientObs.closed != static_cast<int>(state.iterations()) ||
      p.clientObs.responses != static_cast<int>(state.iterations())) {
    state.SkipWithError("tunnels did not complete");
  }
  state.SetItemsProcessed(static_cast<int64_t>(state.iterations()));
}
BENCHMARK(BM_Hbone_OpenStream);

}  // namespace
