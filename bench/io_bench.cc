// io/ micro-benchmarks: completion-token dispatch, io_uring NOP round trips, and a loopback echo
// through EventLoop + multishot recv into a BufRing + sendmsg.
//
//   build-io-rel/bench/zt_bench --benchmark_filter=BM_Io_

#include <benchmark/benchmark.h>

#include <future>
#include <random>
#include <vector>

#include "tests/unit/io/echo_server.h"
#include "ztunnel/io/event_loop.h"
#include "ztunnel/io/ring.h"
#include "ztunnel/io/socket_options.h"
#include "ztunnel/io/user_data.h"

namespace zt::io {
namespace {

// pack/unpack plus the one switch a worker's dispatch does, over a realistic mix of ops.
void BM_Io_TokenDispatch(benchmark::State& state) {
  std::mt19937_64 rng(1);
  const Op ops[] = {Op::kRecv,   Op::kRecv,  Op::kRecv, Op::kSend, Op::kSend,
                    Op::kAccept, Op::kClose, userOp(0), userOp(1)};
  std::vector<uint64_t> packed(4096);
  for (auto& v : packed) {
    v = pack(Token{ops[rng() % std::size(ops)], static_cast<uint8_t>(rng()),
                   static_cast<uint16_t>(rng()), static_cast<uint32_t>(rng() % 100000)});
  }
  uint64_t counters[6] = {};
  for (auto _ : state) {
    for (uint64_t v : packed) {
      const Token t = unpack(v);
      switch (t.op) {
        case Op::kRecv:
          counters[0] += t.slot;
          break;
        case Op::kSend:
          counters[1] += t.gen;
          break;
        case Op::kAccept:
          counters[2] += t.aux;
          break;
        case Op::kClose:
          counters[3] ^= t.slot;
          break;
        default:
          if (isUserOp(t.op)) {
            counters[4] += static_cast<uint8_t>(t.op);
          } else {
            counters[5]++;
          }
          break;
      }
    }
    benchmark::DoNotOptimize(counters);
    benchmark::ClobberMemory();
  }
  state.SetItemsProcessed(static_cast<int64_t>(state.iterations() * packed.size()));
}
BENCHMARK(BM_Io_TokenDispatch);

// Submit a batch of NOPs, wait, reap the batch with one CQ advance.
void BM_Io_NopRoundTrip(benchmark::State& state) {
  const auto batch = static_cast<unsigned>(state.range(0));
  auto ring = Ring::create(RingOptions{.entries = 256});
  if (!ring) {
    state.SkipWithError(ring.error().message().c_str());
    return;
  }
  uint64_t sum = 0;
  for (auto _ : state) {
    for (unsigned i = 0; i < batch; ++i) {
      ring->prepNop(Token{Op::kNop, 0, 0, i});
    }
    unsigned got = 0;
    while (got < batch) {
      if (!ring->submitAndWait(std::nullopt)) {
        state.SkipWithError("submit failed");
        return;
      }
      got += ring->reap([&](const io_uring_cqe& c) { sum += unpack(c.user_data).slot; });
    }
  }
  benchmark::DoNotOptimize(sum);
  state.SetItemsProcessed(static_cast<int64_t>(state.iterations() * batch));
}
BENCHMARK(BM_Io_NopRoundTrip)->ArgName("batch")->Arg(1)->Arg(32)->Arg(256)->UseRealTime();

// Bytes/s through an io_uring echo server (its own thread) from `connections` plain-socket
// clients polled by the benchmark thread; each iteration moves 1 MiB per connection each way.
// Counted bytes are the payload echoed (one direction).
void BM_Io_LoopbackEcho(benchmark::State& state) {
  const auto connections = static_cast<size_t>(state.range(0));
  constexpr uint64_t kPerIteration = 1 << 20;
  auto listener = makeListener(*SocketAddress::parse("127.0.0.1:0"));
  if (!listener) {
    state.SkipWithError(listener.error().message().c_str());
    return;
  }
  auto addr = *localAddress(listener->get());
  auto mailbox = Mailbox<iotest::EchoShutdown>::create();
  if (!mailbox) {
    state.SkipWithError(mailbox.error().message().c_str());
    return;
  }
  std::promise<std::string> ready;
  auto server = std::async(std::launch::async, [&]() -> std::string {
    auto loop = EventLoop<iotest::EchoShutdown>::create(**mailbox);
    if (!loop) {
      ready.set_value(loop.error().message());
      return {};
    }
    auto bufs = BufRing::create((*loop)->ring(), {.groupId = 1, .count = 256, .bufferSize = 16384});
    if (!bufs) {
      ready.set_value(bufs.error().message());
      return {};
    }
    std::string error;
    {
      iotest::EchoServer echo(**loop, **bufs, listener->get());
      echo.start();
      ready.set_value({});
      if (auto st = (*loop)->run(echo); !st) {
        error = st.error().message();
      }
      (*loop)->mailbox().core().clearStop();
      echo.stopAccepting();
      for (int i = 0; i < 200 && (echo.acceptArmed() || echo.liveConnections() > 0); ++i) {
        (void)(*loop)->runOnce(echo, std::chrono::milliseconds(10));
      }
    }
    return error;
  });
  if (std::string err = ready.get_future().get(); !err.empty()) {
    state.SkipWithError(err.c_str());
    (void)server.get();
    return;
  }
  iotest::EchoClients clients;
  std::string err;
  bool ok = clients.connect(addr, connections, &err);
  for (auto _ : state) {
    if (!ok) {
      break;
    }
    ok = clients.roundTrip(kPerIteration, /*verify=*/false, std::chrono::seconds(30), &err);
  }
  if (ok) {
    ok = clients.finish(std::chrono::seconds(30), &err);
  }
  (*mailbox)->requestStop();
  std::string serverErr = server.get();
  if (!ok || !serverErr.empty()) {
    state.SkipWithError((err + serverErr).c_str());
    return;
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * connections * kPerIteration));
}
BENCHMARK(BM_Io_LoopbackEcho)
    ->ArgName("conns")
    ->Arg(1)
    ->Arg(8)
    ->UseRealTime()
    ->MeasureProcessCPUTime()
    ->Unit(benchmark::kMillisecond);

}  // namespace
}  // namespace zt::io
