#pragma once

// The nghttp2 session shared by ClientSession and ServerSession (private to hbone/). One class
// handles both roles: most of the stream machinery (send queues, data providers, flow control,
// keepalive, flood limits, close reporting) is identical; the role only changes how header blocks
// are read and when data may flow.

#include <nghttp2/nghttp2.h>

#include <limits>
#include <memory>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "hbone/connect_request.h"
#include "hbone/session.h"

namespace hbone::detail {

class SessionCore {
 public:
  enum class Role { kClient, kServer };

  static zt::Result<std::unique_ptr<SessionCore>> create(Role role, const SessionConfig& config,
                                                         StreamObserver& observer,
                                                         ClientObserver* client,
                                                         ServerObserver* server);
  ~SessionCore();
  SessionCore(const SessionCore&) = delete;
  SessionCore& operator=(const SessionCore&) = delete;

  zt::Status receive(std::span<const uint8_t> bytes);
  zt::Status produce(zt::ByteBuffer& out, size_t maxBytes);
  bool wantsWrite() const;
  bool wantsRead() const;

  zt::Result<StreamId> openTunnel(const ConnectRequest& request);
  bool canOpenTunnel() const;
  zt::Status respond(StreamId id, int status, std::string_view baggage);

  zt::Status send(StreamId id, zt::ByteBuffer& data);
  size_t queuedBytes(StreamId id) const;
  zt::Status closeWrite(StreamId id);
  void reset(StreamId id, uint32_t code);
  void consume(StreamId id, size_t n);

  zt::Status tick(zt::MonotonicTime now);
  void goAway();
  void abort();
  bool isDead() const;
  const zt::Error* failure() const { return failure_ ? &*failure_ : nullptr; }
  size_t activeStreams() const { return activeStreams_; }

 private:
  struct Stream {
    StreamId id = 0;
    zt::ByteBuffer sendQueue;
    size_t unconsumed = 0;   // delivered by onData, not yet consume()d
    size_t headerBytes = 0;  // of the header block being received (for maxHeaderListSize)
    std::unique_ptr<ConnectRequestParser> parser;  // server: while the request block arrives
    std::string responseBaggage;                   // client: from the final response
    int status = 0;              // client: status seen in the current block; server: responded
    bool reported = false;       // the observer knows this stream
    bool finalResponse = false;  // client: final response received; server: respond() called
    bool established = false;    // 200 received (client) / sent (server)
    bool failed = false;         // non-200 response: nothing more is reported but onStreamClosed
    bool responseSent = false;   // server: response HEADERS went out (premature-reset accounting)
    bool deferred = false;       // our data provider returned NGHTTP2_ERR_DEFERRED
    bool writeClosed = false;    // closeWrite(): END_STREAM once the queue drains
    bool peerEnded = false;      // onEndOfStream delivered
    bool terminal = false;       // onStreamReset delivered, or reported via a failure path
    bool ownerReset = false;     // reset() by the owner: only onStreamClosed follows
    bool aboveHigh = false;      // queue exceeded the high watermark; onStreamWritable pending
    bool closed = false;         // onStreamClosed delivered
  };

  SessionCore(Role role, const SessionConfig& config, StreamObserver& observer,
              ClientObserver* client, ServerObserver* server);
  zt::Status init();

  Stream* find(StreamId id);
  const Stream* find(StreamId id) const;
  Stream* findOpen(StreamId id);
  zt::Status usable() const;
  void resumeIfDeferred(Stream& s);
  bool deliverable(const Stream& s) const;
  void notifyClosed(Stream& s, uint32_t code);
  void failSession(zt::Error error, std::optional<uint32_t> goawayCode);
  void checkFinished();
  zt::Status submitResponse(Stream& s, int status, std::string_view baggage);
  bool takePrematureResetToken();

  // nghttp2 callbacks (user_data = this).
  static ssize_t onSend(nghttp2_session*, const uint8_t* data, size_t length, int, void* ud);
  static int onSendData(nghttp2_session*, nghttp2_frame* frame, const uint8_t* framehd,
                        size_t length, nghttp2_data_source* source, void* ud);
  static ssize_t onReadLength(nghttp2_session*, uint8_t, int32_t, int32_t connWindow,
                              int32_t streamWindow, uint32_t remoteMaxFrame, void* ud);
  static ssize_t onRead(nghttp2_session*, int32_t id, uint8_t*, size_t length, uint32_t* flags,
                        nghttp2_data_source* source, void* ud);
  static int onBeginHeaders(nghttp2_session*, const nghttp2_frame* frame, void* ud);
  static int onHeader(nghttp2_session*, const nghttp2_frame* frame, const uint8_t* name,
                      size_t namelen, const uint8_t* value, size_t valuelen, uint8_t flags,
                      void* ud);
  static int onFrameRecv(nghttp2_session*, const nghttp2_frame* frame, void* ud);
  static int onDataChunk(nghttp2_session*, uint8_t flags, int32_t id, const uint8_t* data,
                         size_t len, void* ud);
  static int onFrameSend(nghttp2_session*, const nghttp2_frame* frame, void* ud);
  static int onStreamClose(nghttp2_session*, int32_t id, uint32_t code, void* ud);
  static int onBeginFrame(nghttp2_session*, const nghttp2_frame_hd* hd, void* ud);
  int countEmptyFrame();

  int handleHeadersFrame(const nghttp2_frame& frame, Stream& s);
  int handleRstStream(const nghttp2_frame& frame);
  void handleEndStream(Stream& s);

  const Role role_;
  const SessionConfig config_;
  StreamObserver& observer_;
  ClientObserver* const client_;
  ServerObserver* const server_;
  nghttp2_session* session_ = nullptr;

  std::unordered_map<StreamId, std::unique_ptr<Stream>> streams_;
  size_t activeStreams_ = 0;

  // produce() state.
  zt::ByteBuffer* out_ = nullptr;
  size_t produced_ = 0;
  size_t budget_ = 0;
  std::vector<StreamId> writable_;  // onStreamWritable to deliver after nghttp2_session_send

  // Liveness.
  int depth_ = 0;              // inside nghttp2 (receive/produce/tick): callbacks may run
  bool pendingAbort_ = false;  // abort() from a callback, carried out when nghttp2 returns
  bool dead_ = false;
  bool flushAfterDeath_ = false;  // a GOAWAY was queued when the session died: produce() flushes it
  std::optional<zt::Error> failure_;
  std::optional<uint32_t> localGoawayCode_;  // error code of a GOAWAY we sent (nghttp2 or us)
  std::optional<zt::Error> callbackError_;   // set by a callback that returned a fatal code
  bool goawayReceived_ = false;
  bool goawaySent_ = false;
  int32_t goawayLastStreamId_ = std::numeric_limits<int32_t>::max();

  // Keepalive.
  bool clockStarted_ = false;
  zt::MonotonicTime nextPing_{};
  zt::MonotonicTime pingSentAt_{};
  bool pingOutstanding_ = false;
  uint64_t pingSeq_ = 0;

  // Flood accounting.
  uint32_t consecutiveEmptyFrames_ = 0;
  uint64_t peerStreams_ = 0;  // streams the peer opened (server) or we opened (client)
  uint64_t dataFramesSent_ = 0;
  uint64_t priorityFrames_ = 0;
  uint64_t windowUpdates_ = 0;
  double resetTokens_ = 0;
  zt::MonotonicTime lastRefill_{};
};

}  // namespace hbone::detail
