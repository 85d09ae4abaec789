// libFuzzer target: the HTTP/2 server session (ServerSession) fed arbitrary bytes, with an
// observer that behaves like the inbound proxy: answers 200 / 503 / later, sends data on
// tunnels, consumes (sometimes only part), half-closes and resets; produce() and tick() are called
// between chunks.
// Properties: no crash/UB/leak; per stream the callbacks follow the documented order
// (onConnectRequest first and once; nothing after onStreamClosed; onData only for reported
// streams); activeStreams() matches the streams reported and not closed.
//
// Input: byte 0 bit 0 set = the fuzzer prepends the client connection preface (the rest is
// what follows it); bits 1-7 seed the chunk sizes the rest is fed in. Seeds in
// tests/fuzz/corpus/h2_server are real ClientSession output.

#include <nghttp2/nghttp2.h>

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <map>
#include <vector>

#include "hbone/session.h"

namespace {

enum class State { kOpen, kClosed };

class FuzzObserver : public hbone::ServerObserver {
 public:
  hbone::ServerSession* session = nullptr;
  std::map<hbone::StreamId, State> streams;
  std::vector<hbone::StreamId> answerLater;
  size_t open = 0;
  unsigned n = 0;

  void check(hbone::StreamId id) {
    auto it = streams.find(id);
    if (it == streams.end() || it->second != State::kOpen) {
      std::abort();  // callback for a stream never reported, or after onStreamClosed
    }
  }
  void sendSome(hbone::StreamId id, size_t bytes) {
    zt::ByteBuffer b;
    std::string payload(bytes, 'x');
    b.append(payload);
    (void)session->send(id, b);
  }
  void onConnectRequest(hbone::StreamId id, hbone::ConnectRequest&& request) override {
    if (streams.count(id) != 0) {
      std::abort();
    }
    if (request.authority.port() == 0) {
      std::abort();
    }
    streams[id] = State::kOpen;
    ++open;
    switch (n++ % 4) {
      case 0:
        if (!session->respond(id, 200)) {
          std::abort();
        }
        sendSome(id, 100 + n % 70000);
        break;
      case 1:
        (void)session->respond(id, 503);
        break;
      case 2:
        answerLater.push_back(id);
        break;
      default:
        (void)session->respond(id, 200, "k8s.namespace.name=fuzz");
        (void)session->closeWrite(id);
        break;
    }
  }
  void onData(hbone::StreamId id, std::span<const uint8_t> data) override {
    check(id);
    // Sometimes hold back part of it (flow control must still bound the peer).
    session->consume(id, (n++ % 3 == 0) ? data.size() / 2 : data.size());
    if (n % 97 == 0) {
      session->reset(id, hbone::h2::kCancel);
    }
  }
  void onEndOfStream(hbone::StreamId id) override {
    check(id);
    (void)session->closeWrite(id);
  }
  void onStreamReset(hbone::StreamId id, uint32_t) override { check(id); }
  void onStreamClosed(hbone::StreamId id) override {
    check(id);
    streams[id] = State::kClosed;
    --open;
  }
  void onStreamWritable(hbone::StreamId id) override { check(id); }
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) {
    return 0;
  }
  const bool prependPreface = (data[0] & 1) != 0;
  uint32_t seed = data[0] >> 1;
  std::string input;
  if (prependPreface) {
    input.assign(NGHTTP2_CLIENT_MAGIC, NGHTTP2_CLIENT_MAGIC_LEN);
  }
  input.append(reinterpret_cast<const char*>(data) + 1, size - 1);

  FuzzObserver obs;
  hbone::SessionConfig config = hbone::SessionConfig::serverDefaults();
  config.maxConcurrentStreams = 8;  // keep per-input work small
  auto created = hbone::ServerSession::create(config, obs);
  if (!created) {
    std::abort();
  }
  auto& server = **created;
  obs.session = &server;

  zt::MonotonicTime now{};
  size_t pos = 0;
  while (pos < input.size() && !server.isDead()) {
    seed = seed * 1103515245u + 12345u;
    size_t chunk = 1 + (seed >> 16) % 4096;
    chunk = std::min(chunk, input.size() - pos);
    auto st = server.receive(
        std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(input.data()) + pos, chunk));
    pos += chunk;
    zt::ByteBuffer out;
    (void)server.produce(out, 64 * 1024);
    if (!st) {
      break;
    }
    for (hbone::StreamId id : obs.answerLater) {
      (void)server.respond(id, (seed & 1) ? 200 : 401);
    }
    obs.answerLater.clear();
    now += std::chrono::seconds(3);
    (void)server.tick(now);
  }
  if (server.activeStreams() != obs.open) {
    std::abort();
  }
  if ((seed & 7) == 0) {
    server.abort();
    if (obs.open != 0 || server.activeStreams() != 0) {
      std::abort();
    }
  }
  return 0;
}
