#pragma once

// HTTP/2 CONNECT tunnel sessions (HBONE) over a byte stream, client and server, on nghttp2.
//
// Sans-IO: the owner feeds bytes read from the (already decrypted) transport to receive(), and
// moves bytes out with produce() whenever wantsWrite() is true; keepalive is driven by tick(now).
// No sockets, threads, timers or TLS inside. Settings, limits and behaviour follow
// ztunnel-compat.md §2.3-§2.6 and reliability.md §2, §7, §8.
//
// Thread and lifetime: a session is used by one thread at a time. The observer must outlive the
// session. Observer callbacks run synchronously inside receive(), produce(), tick() or abort() (and
// never inside other methods). From a callback the observer may call any method of the same
// session except receive(), produce() and tick() (they fail with kInvalidState there); abort()
// from a callback takes effect when the current call returns. Never destroy the session from a
// callback. Destroying the session makes no callbacks: streams still open are simply gone.
//
// Stream callbacks, in order, for every stream the observer knows about:
//   client: onTunnelResponse (once, final status) -> onData* -> onEndOfStream and/or
//           onStreamReset -> onStreamClosed
//   server: onConnectRequest -> onData* -> onEndOfStream and/or onStreamReset -> onStreamClosed
// (A client stream that ends before its final response gets onStreamReset without
// onTunnelResponse; onStreamWritable may come at any point before onStreamClosed.)
// onStreamClosed is always the last callback for an id; afterwards consume()/reset() for the id
// are ignored, queuedBytes() is 0 and calls returning a Status fail with kStreamNotFound. A
// stream reset locally with reset() gets no onStreamReset, only onStreamClosed. When the session
// dies (protocol error, flood, PING timeout, abort()), every stream still open gets
// onStreamReset(id, h2::kConnectError) and onStreamClosed(id) from within the call that noticed
// it.
//
// Flow control is tied to consumption: onData's bytes count against the HTTP/2 windows until the
// owner calls consume(id, n) for them, so a reader that stops consuming bounds what the peer can
// send to the stream window (4 MiB) per stream and the connection window (16 MiB) in total.

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string_view>

#include "hbone/connect_request.h"
#include "hbone/error.h"
#include "ztunnel/core/byte_buffer.h"
#include "ztunnel/core/clock.h"
#include "ztunnel/core/result.h"

namespace hbone {

using StreamId = int32_t;

namespace detail {
class SessionCore;
}

struct SessionConfig {
  // --- HTTP/2 settings (ztunnel-compat.md §2.6) ---
  uint32_t streamWindow = 4 << 20;  // SETTINGS_INITIAL_WINDOW_SIZE we advertise
  // Connection window we advertise (WINDOW_UPDATE on stream 0); 4x the stream window so one
  // stalled stream cannot starve the others (ztunnel-compat.md §2.6).
  uint32_t connectionWindow = 16 << 20;
  uint32_t maxFrameSize = 1 << 20;      // SETTINGS_MAX_FRAME_SIZE we advertise (frames we accept)
  uint32_t maxConcurrentStreams = 200;  // server: SETTINGS_MAX_CONCURRENT_STREAMS; client: ignored
  uint32_t maxStreamsPerConnection = 100;  // client: open at most min(this, peer's setting)
  uint32_t maxHeaderListSize = 64 << 10;   // SETTINGS_MAX_HEADER_LIST_SIZE, enforced on receipt
  // Largest DATA payload we send per frame (also capped by the peer's SETTINGS_MAX_FRAME_SIZE and
  // the windows). BM_Hbone_Relay: the copy dominates (~70% memmove), 16 KiB..1 MiB frames all
  // measure 16-27 GB/s per core, within noise; 64 KiB keeps frame count (the peer's per-frame
  // work) 4x below 16 KiB while streams still interleave finely within one produce().
  uint32_t maxSendFramePayload = 64 << 10;

  // --- keepalive (ztunnel: PING every 10 s after 10 s, dead after 20 s without ACK) ---
  std::chrono::milliseconds pingInterval{10000};
  std::chrono::milliseconds pingTimeout{20000};

  // --- per-stream send queue marks (bytes queued by send() and not yet framed) ---
  // queuedBytes() above the high mark: the owner should stop reading its source; once it drops
  // to the low mark or below, onStreamWritable fires. ztunnel: client send buffer = stream
  // window (4 MiB), server 400 KiB.
  size_t sendHighWatermark = 4 << 20;
  size_t sendLowWatermark = 1 << 20;

  // --- flood limits (reliability.md §2.1-§2.3; §7 defaults noted per field) ---
  // nghttp2_option_set_max_outbound_ack: queued SETTINGS/PING ACKs before the peer is considered
  // flooding (§7: 1000, nghttp2's default). Trips PING and SETTINGS floods from a non-reader.
  size_t maxOutboundAck = 1000;
  // nghttp2_option_set_max_settings: entries per SETTINGS frame (§7: 32).
  size_t maxSettingsEntries = 32;
  // nghttp2_option_set_max_continuations: CONTINUATION frames per header block (§7: 8).
  size_t maxContinuations = 8;
  // Our own reset-flood bucket (server only), counting only *premature* resets: a peer RST_STREAM
  // on a stream whose response HEADERS we had not yet sent (the Rapid Reset pattern: the peer
  // cancels work it made us start). Resets of answered streams (legitimate churn, peers that end
  // tunnels with RST, reliability.md §8) never count. Token bucket, refilled by tick() time;
  // empty -> GOAWAY(ENHANCE_YOUR_CALM) and the session dies. §7: burst 1000, 33/s.
  uint32_t prematureResetBurst = 1000;
  uint32_t prematureResetRatePerSec = 33;
  // nghttp2's built-in limiter (nghttp2_option_set_stream_reset_rate_limit) counts *every*
  // received RST_STREAM, so at its defaults (1000, 33/s) it would drop a shared connection after
  // ~1000 ordinary tunnel closes by RST (reliability.md §8). Kept only as a loose backstop.
  uint64_t anyResetBurst = 10000;
  uint64_t anyResetRatePerSec = 1000;
  // Consecutive inbound DATA frames with an empty payload (or padding only) and no END_STREAM
  // tolerated before the session is killed (Envoy's
  // max_consecutive_inbound_frames_with_empty_payload default: 1). Any DATA with payload or any
  // HEADERS resets the count. (DATA for closed streams is dropped by nghttp2 before any callback,
  // at the cost of parsing a frame header.)
  uint32_t maxConsecutiveEmptyFrames = 1;
  // PRIORITY frames tolerated per stream the peer opened (+1) (Envoy's default: 100).
  uint32_t maxPriorityFramesPerStream = 100;
  // WINDOW_UPDATE frames tolerated: 1 + 2 * (streams + this * DATA frames we sent) (Envoy's
  // max_inbound_window_update_frames_per_data_frame_sent default: 10).
  uint32_t maxWindowUpdatesPerDataFrameSent = 10;

  // Client defaults: header list 16 KiB, send buffer = stream window.
  static SessionConfig clientDefaults();
  // Server defaults: header list 64 KiB, max concurrent streams 200, send buffer 400 KiB.
  static SessionConfig serverDefaults();
};

// Callbacks common to both roles.
class StreamObserver {
 public:
  virtual ~StreamObserver() = default;
  // Tunnel bytes from the peer; `data` is valid only during the call. The bytes stay charged to
  // the flow-control windows until consume(id, n) is called for them.
  virtual void onData(StreamId, std::span<const uint8_t> data) = 0;
  // The peer finished sending (END_STREAM, or RST_STREAM NO_ERROR/CANCEL on an established tunnel):
  // EOF for the reader. Delivered at most once.
  virtual void onEndOfStream(StreamId) = 0;
  // The stream failed: the peer reset it with another code, nghttp2 reset it for a protocol error,
  // it was refused (h2::kRefusedStream: never processed, safe to retry elsewhere), or the session
  // died (h2::kConnectError).
  virtual void onStreamReset(StreamId, uint32_t h2ErrorCode) = 0;
  // The stream is gone; the last callback for this id.
  virtual void onStreamClosed(StreamId) = 0;
  // queuedBytes() fell to sendLowWatermark or below after having exceeded sendHighWatermark.
  virtual void onStreamWritable(StreamId) = 0;
};

class ClientObserver : public StreamObserver {
 public:
  // The final response status. 200: the tunnel is established and queued data starts to flow.
  // Any other status: the tunnel failed; the session resets the stream (CANCEL) and the next and
  // last callback for the id is onStreamClosed. A stream that ends before any final response gets
  // onStreamReset instead (with the received code, which may be h2::kNoError).
  virtual void onTunnelResponse(StreamId, int status) = 0;
  // The final response carried a `baggage` header (ENABLE_RESPONSE_BAGGAGE); called just before
  // onTunnelResponse. Optional.
  virtual void onResponseBaggage(StreamId, std::string_view /*baggage*/) {}
  // The peer sent GOAWAY: canOpenTunnel() is now false; streams the peer accepted continue,
  // streams it did not get onStreamReset(h2::kRefusedStream). Called once.
  virtual void onGoaway() = 0;
};

class ServerObserver : public StreamObserver {
 public:
  // A valid classic CONNECT (malformed ones are answered 400 by the session and never reported).
  // Answer later (or right away) with respond(). Data may arrive before respond(): onData is
  // called for it as it arrives (the owner keeps it, unconsumed if it likes, until the upstream is
  // connected; the stream window bounds it); after an error response it is discarded.
  virtual void onConnectRequest(StreamId, ConnectRequest&& request) = 0;
};

// The client end (outbound pool connection).
class ClientSession {
 public:
  static zt::Result<std::unique_ptr<ClientSession>> create(const SessionConfig& config,
                                                           ClientObserver& observer);
  ~ClientSession();
  ClientSession(const ClientSession&) = delete;
  ClientSession& operator=(const ClientSession&) = delete;

  // Bytes from the peer. An error means the session is dead (isDead()); flush produce() output
  // best-effort (it may hold a GOAWAY) and close the transport.
  zt::Status receive(std::span<const uint8_t> bytes);
  // Appends pending frames to `out` (DATA within flow control) until at least maxBytes were
  // appended or nothing is pending; overshoots by less than one frame (<= maxSendFramePayload +
  // 9 bytes). The client connection preface and SETTINGS come out of the first call. After the
  // session died, only a pending GOAWAY is still flushed. An error means the session just failed
  // (e.g. nghttp2's GOAWAY for a peer protocol error went out with this call): write what was
  // appended, then close the transport.
  zt::Status produce(zt::ByteBuffer& out, size_t maxBytes);
  bool wantsWrite() const;
  bool wantsRead() const;

  // Submits CONNECT; the HEADERS go out with the next produce(). Fails with kSessionDead,
  // kGoaway or kStreamLimit when !canOpenTunnel().
  zt::Result<StreamId> openTunnel(const ConnectRequest& request);
  // Not dead, no GOAWAY sent or received, stream ids left, and activeStreams() below
  // min(maxStreamsPerConnection, peer's SETTINGS_MAX_CONCURRENT_STREAMS).
  bool canOpenTunnel() const;
  // Streams opened and not yet reported closed.
  size_t activeStreams() const;

  // Moves `data` into the stream's send queue (ByteBuffer::moveFrom, no copy). Before the 200
  // response the data waits; after closeWrite() or a failure it is an error (data left in place).
  zt::Status send(StreamId id, zt::ByteBuffer& data);
  size_t queuedBytes(StreamId id) const;
  // Half-close: an empty DATA frame with END_STREAM goes out once the queue is drained (and the
  // tunnel is established). Idempotent.
  zt::Status closeWrite(StreamId id);
  // RST_STREAM(h2ErrorCode), e.g. h2::kCancel to abort. Queued data is dropped. Only
  // onStreamClosed follows. Unknown ids are ignored.
  void reset(StreamId id, uint32_t h2ErrorCode);
  // The owner delivered n bytes of onData onward: reopens the windows (WINDOW_UPDATE once half a
  // window was consumed). Extra bytes and unknown/closed ids are ignored.
  void consume(StreamId id, size_t n);

  // Keepalive and timed limits: a PING every pingInterval (the first one pingInterval after the
  // first tick); kPingTimeout (session dead) when its ACK is not back within pingTimeout.
  zt::Status tick(zt::MonotonicTime now);
  // Sends GOAWAY(NO_ERROR): no new tunnels; open ones continue.
  void goAway();
  // The transport is gone: the session dies now and open streams are reported reset.
  void abort();
  // Failed (see failure()), or finished (GOAWAY exchanged and no streams left, nothing to send).
  // Flush what produce() still gives, then close the transport.
  bool isDead() const;
  // Why the session failed; nullptr if it did not (yet).
  const zt::Error* failure() const;

 private:
  explicit ClientSession(std::unique_ptr<detail::SessionCore> core);
  std::unique_ptr<detail::SessionCore> core_;
};

// The server end (inbound 15008 connection). Same conventions as ClientSession.
class ServerSession {
 public:
  static zt::Result<std::unique_ptr<ServerSession>> create(const SessionConfig& config,
                                                           ServerObserver& observer);
  ~ServerSession();
  ServerSession(const ServerSession&) = delete;
  ServerSession& operator=(const ServerSession&) = delete;

  zt::Status receive(std::span<const uint8_t> bytes);
  zt::Status produce(zt::ByteBuffer& out, size_t maxBytes);
  bool wantsWrite() const;
  bool wantsRead() const;

  // Answers a CONNECT reported by onConnectRequest, once. 200 keeps the stream open as a tunnel
  // (`baggage`, if non-empty, is sent as the response's baggage header). Any other status (400,
  // 401, 503, ...: 100-599 except 1xx) ends the stream with no body; if the client is still
  // sending, RST_STREAM(NO_ERROR) follows the response. Errors: kStreamNotFound (closed meanwhile:
  // onStreamClosed already came), kInvalidState (answered already), kInvalidHeader (bad status or
  // baggage value).
  zt::Status respond(StreamId id, int status, std::string_view baggage = {});

  // Valid after respond(200) (kInvalidState before).
  zt::Status send(StreamId id, zt::ByteBuffer& data);
  size_t queuedBytes(StreamId id) const;
  zt::Status closeWrite(StreamId id);
  void reset(StreamId id, uint32_t h2ErrorCode);
  void consume(StreamId id, size_t n);

  zt::Status tick(zt::MonotonicTime now);
  // Drain: GOAWAY(NO_ERROR) naming the last stream we processed; open streams continue, new ones
  // are refused; isDead() once they are all done.
  void goAway();
  void abort();
  bool isDead() const;
  const zt::Error* failure() const;
  size_t activeStreams() const;

 private:
  explicit ServerSession(std::unique_ptr<detail::SessionCore> core);
  std::unique_ptr<detail::SessionCore> core_;
};

}  // namespace hbone
