#pragma once

// Everything the proxy's workers need to know about their configuration: listener addresses,
// socket behaviour, pool and HTTP/2 limits, timeouts. Built once by app/ from the Config and
// shared read-only by all workers.

#include <chrono>
#include <cstdint>
#include <string>

#include "ztunnel/core/clock.h"
#include "ztunnel/core/sockaddr.h"
#include "ztunnel/io/socket_options.h"

namespace zt::proxy {

// Ports whose reuse as a destination would loop traffic back into ztunnel (spec §1.4).
inline constexpr uint16_t kOutboundPort = 15001;
inline constexpr uint16_t kInboundPlaintextPort = 15006;
inline constexpr uint16_t kInboundHbonePort = 15008;
inline constexpr uint16_t kSocks5Port = 15080;

// ENABLE_ORIG_SRC: connect to the destination app from the client's IP (IP_TRANSPARENT).
enum class OrigSrcMode : uint8_t { kAuto, kOn, kOff };

struct ProxyConfig {
  SocketAddress outboundAddr = *SocketAddress::parse("[::]:15001");
  SocketAddress inboundAddr = *SocketAddress::parse("[::]:15008");
  SocketAddress inboundPlaintextAddr = *SocketAddress::parse("[::]:15006");
  SocketAddress socks5Addr = *SocketAddress::parse("127.0.0.1:15080");
  bool enableSocks5 = false;

  // The dedicated-mode workload this proxy serves (PROXY_WORKLOAD_INFO), looked up in the state
  // for telemetry/baggage and to find which local workload inbound requests are for.
  std::string workloadNamespace;
  std::string workloadName;
  std::string workloadServiceAccount;
  std::string network;  // NETWORK

  uint32_t packetMark = io::kDefaultPacketMark;  // SO_MARK on every socket we open
  OrigSrcMode origSrc = OrigSrcMode::kAuto;
  io::KeepaliveOptions keepalive;
  bool userTimeout = false;

  Duration connectTimeout = std::chrono::seconds(10);    // TCP connect, outbound and upstream
  Duration handshakeTimeout = std::chrono::seconds(10);  // TLS + first SETTINGS, both directions

  uint32_t poolMaxStreamsPerConnection = 100;                   // POOL_MAX_STREAMS_PER_CONNECTION
  Duration poolUnusedReleaseTimeout = std::chrono::minutes(5);  // POOL_UNUSED_RELEASE_TIMEOUT
  uint32_t h2StreamWindow = 4 << 20;                            // HTTP2_STREAM_WINDOW_SIZE
  uint32_t h2ConnectionWindow = 16 << 20;                       // HTTP2_CONNECTION_WINDOW_SIZE
  uint32_t h2FrameSize = 1 << 20;                               // HTTP2_FRAME_SIZE

  // Per-direction buffering on a plaintext socket before its source is paused.
  size_t plainHighWatermark = 1 << 20;
  size_t plainLowWatermark = 256 << 10;

  // Provided receive buffers per worker.
  uint32_t recvBufferSize = 64 << 10;
  uint32_t recvBufferCount = 64;
  unsigned ringEntries = 1024;
};

}  // namespace zt::proxy
