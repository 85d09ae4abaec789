// End to end through the io module: a loopback echo server made only of EventLoop, Ring,
// multishot accept, multishot recv into a BufRing, sendmsg and close moves 64 MiB byte-exact
// across 50 concurrent connections.

#include <gtest/gtest.h>

#include <future>
#include <thread>

#include "tests/unit/io/echo_server.h"
#include "tests/unit/io/io_test_util.h"
#include "ztunnel/io/socket_options.h"

namespace zt::io {
namespace {

using iotest::EchoClients;
using iotest::EchoServer;
using iotest::EchoShutdown;

struct ServerResult {
  std::string error;
  EchoServer::Stats stats;
  uint64_t stale = 0;
  size_t liveAfter = 0;
  uint32_t buffersInUseAfter = 0;
  LoopStats loop;
};

// Runs an echo server on its own thread (the ring is created there: SINGLE_ISSUER).
ServerResult runServer(Mailbox<EchoShutdown>& mailbox, int listenFd, BufRingOptions bufOptions,
                       std::promise<void>& ready) {
  ServerResult out;
  auto loop = EventLoop<EchoShutdown>::create(mailbox, EventLoopOptions{.ring = {.entries = 256}});
  if (!loop) {
    out.error = loop.error().message();
    ready.set_value();
    return out;
  }
  auto bufs = BufRing::create((*loop)->ring(), bufOptions);
  if (!bufs) {
    out.error = bufs.error().message();
    ready.set_value();
    return out;
  }
  {
    EchoServer server(**loop, **bufs, listenFd);
    server.start();
    ready.set_value();
    if (auto st = (*loop)->run(server); !st) {
      out.error = st.error().message();
    }
    // Stopped: cancel the accept and let in-flight work finish (bounded).
    (*loop)->mailbox().core().clearStop();
    server.stopAccepting();
    for (int i = 0; i < 200 && (server.acceptArmed() || server.liveConnections() > 0); ++i) {
      (void)(*loop)->runOnce(server, std::chrono::milliseconds(10));
    }
    out.stats = server.stats();
    out.stale = server.staleCompletions();
    out.liveAfter = server.liveConnections();
    out.loop = (*loop)->stats();
  }
  out.buffersInUseAfter = (*bufs)->inUse();
  return out;
}

void echoAcross(size_t connections, uint64_t totalBytes, BufRingOptions bufOptions) {
  auto listener = makeListener(*SocketAddress::parse("127.0.0.1:0"));
  ASSERT_TRUE(listener) << listener.error().message();
  auto addr = localAddress(listener->get());
  ASSERT_TRUE(addr);
  auto mailbox = Mailbox<EchoShutdown>::create();
  ASSERT_TRUE(mailbox);

  std::promise<void> ready;
  auto readyFuture = ready.get_future();
  auto server = std::async(
      std::launch::async, [&] { return runServer(**mailbox, listener->get(), bufOptions, ready); });
  readyFuture.wait();

  EchoClients clients;
  std::string err;
  bool ok = clients.connect(*addr, connections, &err);
  // Uneven sizes so connections finish at different times.
  std::vector<uint64_t> sizes(connections);
  uint64_t assigned = 0;
  for (size_t i = 0; i < connections; ++i) {
    sizes[i] = (i + 1 == connections) ? totalBytes - assigned
                                      : totalBytes / connections + (i % 7) * 4093 - 3 * 4093;
    assigned += sizes[i];
  }
  if (ok) {
    ok = clients.roundTrip(sizes, /*verify=*/true, std::chrono::seconds(120), &err);
  }
  if (ok) {
    ok = clients.finish(std::chrono::seconds(30), &err);
  }
  (*mailbox)->requestStop();
  ServerResult result = server.get();
  ASSERT_TRUE(result.error.empty()) << result.error;
  ASSERT_TRUE(ok) << err;
  EXPECT_EQ(clients.received(), totalBytes);
  EXPECT_EQ(result.stats.accepted, connections);
  EXPECT_EQ(result.stats.closed, connections);
  EXPECT_EQ(result.stats.bytes, totalBytes);
  EXPECT_EQ(result.stale, 0u);
  EXPECT_EQ(result.liveAfter, 0u);
  EXPECT_EQ(result.buffersInUseAfter, 0u);
  ::testing::Test::RecordProperty("enobufs", static_cast<int>(result.stats.enobufs));
  ::testing::Test::RecordProperty("loop_iterations", static_cast<int>(result.loop.iterations));
  std::printf(
      "echo: %zu conns, %llu bytes, %llu loop iterations, %llu completions, %llu enobufs, "
      "%llu recv re-arms, %llu partial sends\n",
      connections, static_cast<unsigned long long>(totalBytes),
      static_cast<unsigned long long>(result.loop.iterations),
      static_cast<unsigned long long>(result.loop.completions),
      static_cast<unsigned long long>(result.stats.enobufs),
      static_cast<unsigned long long>(result.stats.recvRearms),
      static_cast<unsigned long long>(result.stats.partialSends));
}

TEST(Echo, SixtyFourMiBAcrossFiftyConnections) {
  ZT_SKIP_WITHOUT_IO_URING();
  echoAcross(50, 64ull << 20, BufRingOptions{.groupId = 1, .count = 256, .bufferSize = 16384});
}

// Few, small buffers: -ENOBUFS and parked re-arms happen constantly, and the stream must still be
// exact.
TEST(Echo, SurvivesBufferStarvation) {
  ZT_SKIP_WITHOUT_IO_URING();
  echoAcross(20, 8ull << 20, BufRingOptions{.groupId = 1, .count = 8, .bufferSize = 4096});
}

}  // namespace
}  // namespace zt::io
