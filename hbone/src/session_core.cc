#include "session_core.h"

#include <algorithm>
#include <array>
#include <cstring>
#include <limits>

#include "ztunnel/core/log.h"

namespace hbone::detail {
namespace {

constexpr uint32_t kMaxWindow = (1u << 31) - 1;  // RFC 9113 §6.9.1
constexpr uint32_t kMinFrameSize = 1u << 14;
constexpr uint32_t kMaxFrameSize = (1u << 24) - 1;

struct CallbacksDeleter {
  void operator()(nghttp2_session_callbacks* c) const { nghttp2_session_callbacks_del(c); }
};
struct OptionDeleter {
  void operator()(nghttp2_option* o) const { nghttp2_option_del(o); }
};

nghttp2_nv makeNv(const std::string& name, const std::string& value, uint8_t flags) {
  return nghttp2_nv{reinterpret_cast<uint8_t*>(const_cast<char*>(name.data())),
                    reinterpret_cast<uint8_t*>(const_cast<char*>(value.data())), name.size(),
                    value.size(), flags};
}

zt::Status validate(const SessionConfig& c) {
  auto bad = [](const char* what) { return zt::fail(HboneErrc::kInvalidConfig, what); };
  if (c.streamWindow == 0 || c.streamWindow > kMaxWindow) {
    return bad("streamWindow must be 1..2^31-1");
  }
  if (c.connectionWindow < 65535 || c.connectionWindow > kMaxWindow) {
    return bad("connectionWindow must be 65535..2^31-1");
  }
  if (c.maxFrameSize < kMinFrameSize || c.maxFrameSize > kMaxFrameSize) {
    return bad("maxFrameSize must be 16384..16777215");
  }
  if (c.maxSendFramePayload == 0 || c.maxConcurrentStreams == 0 || c.maxStreamsPerConnection == 0 ||
      c.maxHeaderListSize == 0) {
    return bad("maxSendFramePayload, stream limits and maxHeaderListSize must be non-zero");
  }
  if (c.pingInterval.count() <= 0 || c.pingTimeout.count() <= 0) {
    return bad("pingInterval and pingTimeout must be positive");
  }
  if (c.sendLowWatermark > c.sendHighWatermark) {
    return bad("sendLowWatermark above sendHighWatermark");
  }
  return zt::ok();
}

zt::Error nghttp2Error(int rv, const char* where) {
  std::string detail = std::string(where) + ": " + nghttp2_strerror(rv);
  switch (rv) {
    case NGHTTP2_ERR_FLOODED:
      return zt::Error(
          HboneErrc::kFlood,
          where + std::string(": outbound ACK queue over limit (PING/SETTINGS flood)"));
    case NGHTTP2_ERR_TOO_MANY_CONTINUATIONS:
      return zt::Error(HboneErrc::kFlood, std::move(detail));
    case NGHTTP2_ERR_NOMEM:
    case NGHTTP2_ERR_CALLBACK_FAILURE:
      return zt::Error(HboneErrc::kInternal, std::move(detail));
    default:
      return zt::Error(HboneErrc::kProtocol, std::move(detail));
  }
}

}  // namespace

zt::Result<std::unique_ptr<SessionCore>> SessionCore::create(Role role, const SessionConfig& config,
                                                             StreamObserver& observer,
                                                             ClientObserver* client,
                                                             ServerObserver* server) {
  ZT_TRY_STATUS(validate(config));
  std::unique_ptr<SessionCore> core(new SessionCore(role, config, observer, client, server));
  ZT_TRY_STATUS(core->init());
  return core;
}

SessionCore::SessionCore(Role role, const SessionConfig& config, StreamObserver& observer,
                         ClientObserver* client, ServerObserver* server)
    : role_(role), config_(config), observer_(observer), client_(client), server_(server) {}

SessionCore::~SessionCore() {
  // nghttp2_session_del makes no callbacks; the owner knows open streams are gone.
  if (session_ != nullptr) {
    nghttp2_session_del(session_);
  }
}

zt::Status SessionCore::init() {
  nghttp2_session_callbacks* rawCbs = nullptr;
  if (int rv = nghttp2_session_callbacks_new(&rawCbs); rv != 0) {
    return zt::fail(nghttp2Error(rv, "nghttp2_session_callbacks_new"));
  }
  std::unique_ptr<nghttp2_session_callbacks, CallbacksDeleter> cbs(rawCbs);
  nghttp2_session_callbacks_set_send_callback(cbs.get(), &SessionCore::onSend);
  nghttp2_session_callbacks_set_send_data_callback(cbs.get(), &SessionCore::onSendData);
  nghttp2_session_callbacks_set_data_source_read_length_callback(cbs.get(),
                                                                 &SessionCore::onReadLength);
  nghttp2_session_callbacks_set_on_begin_headers_callback(cbs.get(), &SessionCore::onBeginHeaders);
  nghttp2_session_callbacks_set_on_header_callback(cbs.get(), &SessionCore::onHeader);
  nghttp2_session_callbacks_set_on_frame_recv_callback(cbs.get(), &SessionCore::onFrameRecv);
  nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cbs.get(), &SessionCore::onDataChunk);
  nghttp2_session_callbacks_set_on_frame_send_callback(cbs.get(), &SessionCore::onFrameSend);
  nghttp2_session_callbacks_set_on_stream_close_callback(cbs.get(), &SessionCore::onStreamClose);
  nghttp2_session_callbacks_set_on_begin_frame_callback(cbs.get(), &SessionCore::onBeginFrame);

  nghttp2_option* rawOpt = nullptr;
  if (int rv = nghttp2_option_new(&rawOpt); rv != 0) {
    return zt::fail(nghttp2Error(rv, "nghttp2_option_new"));
  }
  std::unique_ptr<nghttp2_option, OptionDeleter> opt(rawOpt);
  // Windows open only as the owner consumes (ztunnel-compat.md §2.6, reliability.md §2.4).
  nghttp2_option_set_no_auto_window_update(opt.get(), 1);
  // Closed streams are kept only for the RFC 7540 priority tree; tunnels don't need that memory.
  nghttp2_option_set_no_closed_streams(opt.get(), 1);
  // Flood limits: values and their reliability.md §7 anchors are documented in SessionConfig.
  nghttp2_option_set_max_outbound_ack(opt.get(), config_.maxOutboundAck);
  nghttp2_option_set_max_settings(opt.get(), config_.maxSettingsEntries);
  nghttp2_option_set_max_continuations(opt.get(), config_.maxContinuations);
  nghttp2_option_set_stream_reset_rate_limit(opt.get(), config_.anyResetBurst,
                                             config_.anyResetRatePerSec);
  if (role_ == Role::kServer) {
    // We validate the request ourselves so that a non-CONNECT method, :scheme/:path or a bad
    // authority gets a 400 answer (ztunnel-compat.md §2.4) instead of nghttp2's RST_STREAM.
    nghttp2_option_set_no_http_messaging(opt.get(), 1);
  } else {
    // Until the server's SETTINGS arrive, nghttp2 would assume 100 concurrent streams.
    nghttp2_option_set_peer_max_concurrent_streams(opt.get(), config_.maxStreamsPerConnection);
  }

  int rv = role_ == Role::kServer
               ? nghttp2_session_server_new2(&session_, cbs.get(), this, opt.get())
               : nghttp2_session_client_new2(&session_, cbs.get(), this, opt.get());
  if (rv != 0) {
    session_ = nullptr;
    return zt::fail(nghttp2Error(rv, "nghttp2_session_new"));
  }

  std::array<nghttp2_settings_entry, 5> iv{};
  size_t n = 0;
  iv[n++] = {NGHTTP2_SETTINGS_ENABLE_PUSH, 0};
  iv[n++] = {NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, config_.streamWindow};
  iv[n++] = {NGHTTP2_SETTINGS_MAX_FRAME_SIZE, config_.maxFrameSize};
  iv[n++] = {NGHTTP2_SETTINGS_MAX_HEADER_LIST_SIZE, config_.maxHeaderListSize};
  if (role_ == Role::kServer) {
    iv[n++] = {NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS, config_.maxConcurrentStreams};
  }
  if (rv = nghttp2_submit_settings(session_, NGHTTP2_FLAG_NONE, iv.data(), n); rv != 0) {
    return zt::fail(nghttp2Error(rv, "nghttp2_submit_settings"));
  }
  if (config_.connectionWindow > 65535) {
    rv = nghttp2_session_set_local_window_size(session_, NGHTTP2_FLAG_NONE, 0,
                                               static_cast<int32_t>(config_.connectionWindow));
    if (rv != 0) {
      return zt::fail(nghttp2Error(rv, "nghttp2_session_set_local_window_size"));
    }
  }
  resetTokens_ = config_.prematureResetBurst;
  return zt::ok();
}

// ---------------------------------------------------------------------------------------------
// Driving

zt::Status SessionCore::receive(std::span<const uint8_t> bytes) {
  if (depth_ > 0) {
    return zt::fail(HboneErrc::kInvalidState, "receive() called from an observer callback");
  }
  if (dead_) {
    return failure_ ? zt::fail(*failure_) : zt::fail(HboneErrc::kSessionDead);
  }
  ++depth_;
  ssize_t rv = nghttp2_session_mem_recv(session_, bytes.data(), bytes.size());
  --depth_;
  if (rv < 0 || pendingAbort_) {
    if (pendingAbort_) {
      failSession(zt::Error(HboneErrc::kAborted, "aborted by the owner"), std::nullopt);
    } else if (callbackError_) {
      failSession(std::move(*callbackError_), h2::kEnhanceYourCalm);
    } else {
      auto code = static_cast<int>(rv);
      std::optional<uint32_t> goaway = h2::kProtocolError;
      if (code == NGHTTP2_ERR_FLOODED || code == NGHTTP2_ERR_TOO_MANY_CONTINUATIONS) {
        goaway = h2::kEnhanceYourCalm;
      } else if (code == NGHTTP2_ERR_BAD_CLIENT_MAGIC) {
        goaway.reset();  // not an HTTP/2 peer
      } else if (code == NGHTTP2_ERR_NOMEM || code == NGHTTP2_ERR_CALLBACK_FAILURE) {
        goaway = h2::kInternalError;
      }
      failSession(nghttp2Error(code, "receive"), goaway);
    }
    return zt::fail(*failure_);
  }
  checkFinished();
  if (failure_) {
    return zt::fail(*failure_);
  }
  return zt::ok();
}

zt::Status SessionCore::produce(zt::ByteBuffer& out, size_t maxBytes) {
  if (depth_ > 0) {
    return zt::fail(HboneErrc::kInvalidState, "produce() called from an observer callback");
  }
  if ((dead_ && !flushAfterDeath_) || maxBytes == 0) {
    return zt::ok();
  }
  const bool wasDead = dead_;
  out_ = &out;
  produced_ = 0;
  budget_ = maxBytes;
  ++depth_;
  int rv = nghttp2_session_send(session_);
  --depth_;
  out_ = nullptr;
  if (rv != 0 && !dead_) {
    failSession(callbackError_ ? std::move(*callbackError_) : nghttp2Error(rv, "produce"),
                std::nullopt);
    return zt::fail(*failure_);
  }
  if (pendingAbort_ && !dead_) {
    failSession(zt::Error(HboneErrc::kAborted, "aborted by the owner"), std::nullopt);
    return zt::fail(*failure_);
  }
  if (!writable_.empty()) {
    std::vector<StreamId> ids;
    ids.swap(writable_);
    for (StreamId id : ids) {
      Stream* s = find(id);
      if (!dead_ && s != nullptr && s->reported && !s->closed) {
        observer_.onStreamWritable(id);
      }
    }
  }
  checkFinished();
  if (!wasDead && failure_) {
    return zt::fail(*failure_);  // e.g. nghttp2's GOAWAY for a peer protocol error just went out
  }
  return zt::ok();
}

bool SessionCore::wantsWrite() const {
  if (dead_ && !flushAfterDeath_) {
    return false;
  }
  return nghttp2_session_want_write(session_) != 0;
}

bool SessionCore::wantsRead() const {
  return !dead_ && nghttp2_session_want_read(session_) != 0;
}

bool SessionCore::isDead() const {
  return dead_ ||
         (nghttp2_session_want_read(session_) == 0 && nghttp2_session_want_write(session_) == 0);
}

void SessionCore::checkFinished() {
  if (dead_ || nghttp2_session_want_read(session_) != 0 ||
      nghttp2_session_want_write(session_) != 0) {
    return;
  }
  // Either a clean end (GOAWAY exchanged, no streams left) or nghttp2 terminated the session
  // after a peer protocol error (its GOAWAY has been flushed).
  if (localGoawayCode_ && *localGoawayCode_ != h2::kNoError) {
    auto errc =
        *localGoawayCode_ == h2::kEnhanceYourCalm ? HboneErrc::kFlood : HboneErrc::kProtocol;
    failSession(zt::Error(errc, "sent GOAWAY with error code " + std::to_string(*localGoawayCode_)),
                std::nullopt);
  } else {
    failSession(zt::Error(HboneErrc::kSessionDead, "finished"), std::nullopt);
    failure_.reset();  // a clean end is not a failure
  }
}

void SessionCore::failSession(zt::Error error, std::optional<uint32_t> goawayCode) {
  if (dead_) {
    return;
  }
  ZT_DEBUG("hbone: session ends: {}", error.message());
  dead_ = true;
  failure_ = std::move(error);
  if (goawayCode) {
    // Best effort: the owner flushes produce() before closing the transport.
    if (nghttp2_session_terminate_session(session_, *goawayCode) == 0) {
      flushAfterDeath_ = true;
    }
  }
  std::vector<StreamId> ids;
  ids.reserve(streams_.size());
  for (auto& [id, s] : streams_) {
    if (s->reported && !s->closed) {
      ids.push_back(id);
    }
  }
  std::sort(ids.begin(), ids.end());
  ++depth_;  // the callbacks below must not re-enter receive()/produce()/tick()
  for (StreamId id : ids) {
    Stream* s = find(id);
    if (s != nullptr && !s->closed) {
      notifyClosed(*s, h2::kConnectError);
    }
  }
  --depth_;
}

zt::Status SessionCore::tick(zt::MonotonicTime now) {
  if (depth_ > 0) {
    return zt::fail(HboneErrc::kInvalidState, "tick() called from an observer callback");
  }
  if (dead_) {
    return failure_ ? zt::fail(*failure_) : zt::ok();
  }
  if (!clockStarted_) {
    clockStarted_ = true;
    nextPing_ = now + config_.pingInterval;
    lastRefill_ = now;
  }
  if (now > lastRefill_) {
    double seconds = std::chrono::duration<double>(now - lastRefill_).count();
    resetTokens_ = std::min<double>(config_.prematureResetBurst,
                                    resetTokens_ + seconds * config_.prematureResetRatePerSec);
    lastRefill_ = now;
  }
  if (pingOutstanding_ && now - pingSentAt_ >= config_.pingTimeout) {
    // ztunnel tears the connection down without a GOAWAY here: the peer is not listening.
    failSession(zt::Error(HboneErrc::kPingTimeout), std::nullopt);
    return zt::fail(*failure_);
  }
  if (!pingOutstanding_ && now >= nextPing_) {
    ++pingSeq_;
    std::array<uint8_t, 8> opaque{};
    for (size_t i = 0; i < 8; ++i) {
      opaque[i] = static_cast<uint8_t>(pingSeq_ >> (56 - 8 * i));
    }
    if (int rv = nghttp2_submit_ping(session_, NGHTTP2_FLAG_NONE, opaque.data()); rv != 0) {
      failSession(nghttp2Error(rv, "submit PING"), std::nullopt);
      return zt::fail(*failure_);
    }
    pingOutstanding_ = true;
    pingSentAt_ = now;
    nextPing_ = now + config_.pingInterval;
  }
  return zt::ok();
}

void SessionCore::goAway() {
  if (dead_ || goawaySent_) {
    return;
  }
  goawaySent_ = true;
  goawayLastStreamId_ = nghttp2_session_get_last_proc_stream_id(session_);
  int rv = nghttp2_submit_goaway(session_, NGHTTP2_FLAG_NONE, goawayLastStreamId_, NGHTTP2_NO_ERROR,
                                 nullptr, 0);
  if (rv != 0) {
    ZT_DEBUG("hbone: submit GOAWAY failed: {}", nghttp2_strerror(rv));
  }
}

void SessionCore::abort() {
  if (depth_ > 0) {
    // Inside a callback: stop nghttp2's processing first, then fail (receive()/produce()).
    pendingAbort_ = true;
    return;
  }
  failSession(zt::Error(HboneErrc::kAborted, "aborted by the owner"), std::nullopt);
}

// ---------------------------------------------------------------------------------------------
// Streams

SessionCore::Stream* SessionCore::find(StreamId id) {
  auto it = streams_.find(id);
  return it == streams_.end() ? nullptr : it->second.get();
}

const SessionCore::Stream* SessionCore::find(StreamId id) const {
  auto it = streams_.find(id);
  return it == streams_.end() ? nullptr : it->second.get();
}

SessionCore::Stream* SessionCore::findOpen(StreamId id) {
  Stream* s = find(id);
  return s != nullptr && s->reported && !s->closed ? s : nullptr;
}

zt::Status SessionCore::usable() const {
  if (dead_) {
    return zt::fail(HboneErrc::kSessionDead);
  }
  return zt::ok();
}

bool SessionCore::canOpenTunnel() const {
  if (role_ != Role::kClient || dead_ || goawayReceived_ || goawaySent_ || pendingAbort_) {
    return false;
  }
  if (nghttp2_session_get_next_stream_id(session_) > static_cast<uint32_t>(kMaxWindow)) {
    return false;  // stream ids exhausted: the pool needs a new connection
  }
  uint32_t peerLimit =
      nghttp2_session_get_remote_settings(session_, NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS);
  return activeStreams_ < std::min(config_.maxStreamsPerConnection, peerLimit);
}

zt::Result<StreamId> SessionCore::openTunnel(const ConnectRequest& request) {
  ZT_TRY_STATUS(usable());
  if (goawayReceived_ || goawaySent_) {
    return zt::fail(HboneErrc::kGoaway);
  }
  if (!canOpenTunnel()) {
    return zt::fail(HboneErrc::kStreamLimit);
  }
  std::vector<HeaderField> headers = request.toHeaders();
  std::vector<nghttp2_nv> nva;
  nva.reserve(headers.size());
  for (const auto& h : headers) {
    // The trace id is random per tunnel: indexing it would only churn the HPACK table.
    uint8_t flags = h.name == "traceparent" ? NGHTTP2_NV_FLAG_NO_INDEX : NGHTTP2_NV_FLAG_NONE;
    nva.push_back(makeNv(h.name, h.value, flags));
  }
  auto stream = std::make_unique<Stream>();
  nghttp2_data_provider provider{};
  provider.source.ptr = stream.get();
  provider.read_callback = &SessionCore::onRead;
  int32_t id =
      nghttp2_submit_request(session_, nullptr, nva.data(), nva.size(), &provider, nullptr);
  if (id < 0) {
    if (id == NGHTTP2_ERR_STREAM_ID_NOT_AVAILABLE) {
      return zt::fail(HboneErrc::kStreamLimit, "stream ids exhausted");
    }
    return zt::fail(nghttp2Error(id, "submit CONNECT"));
  }
  stream->id = id;
  stream->reported = true;
  ++activeStreams_;
  ++peerStreams_;
  streams_.emplace(id, std::move(stream));
  return id;
}

zt::Status SessionCore::respond(StreamId id, int status, std::string_view baggage) {
  ZT_TRY_STATUS(usable());
  if (role_ != Role::kServer) {
    return zt::fail(HboneErrc::kInvalidState, "respond() is for servers");
  }
  Stream* s = findOpen(id);
  if (s == nullptr || s->terminal) {
    return zt::fail(HboneErrc::kStreamNotFound);
  }
  if (s->finalResponse || s->ownerReset) {
    return zt::fail(HboneErrc::kInvalidState, "already answered or reset");
  }
  if (status < 200 || status > 599 || (status > 200 && status < 300)) {
    return zt::fail(HboneErrc::kInvalidHeader, "status must be 200 or 300-599");
  }
  if (!baggage.empty() &&
      nghttp2_check_header_value_rfc9113(reinterpret_cast<const uint8_t*>(baggage.data()),
                                         baggage.size()) == 0) {
    return zt::fail(HboneErrc::kInvalidHeader, "bad baggage value");
  }
  return submitResponse(*s, status, baggage);
}

zt::Status SessionCore::submitResponse(Stream& s, int status, std::string_view baggage) {
  std::string statusText = std::to_string(status);
  static const std::string kStatus = ":status";
  static const std::string kBaggage = "baggage";
  std::string baggageValue(baggage);
  std::array<nghttp2_nv, 2> nva{};
  size_t n = 0;
  nva[n++] = makeNv(kStatus, statusText, NGHTTP2_NV_FLAG_NONE);
  if (!baggageValue.empty()) {
    nva[n++] = makeNv(kBaggage, baggageValue, NGHTTP2_NV_FLAG_NONE);
  }
  s.finalResponse = true;
  s.status = status;
  int rv;
  if (status == 200) {
    s.established = true;
    nghttp2_data_provider provider{};
    provider.source.ptr = &s;
    provider.read_callback = &SessionCore::onRead;
    rv = nghttp2_submit_response(session_, s.id, nva.data(), n, &provider);
  } else {
    // Error responses carry no body and end the stream (ztunnel-compat.md §2.4).
    s.failed = true;
    rv = nghttp2_submit_response(session_, s.id, nva.data(), n, nullptr);
  }
  if (rv != 0) {
    return zt::fail(nghttp2Error(rv, "submit response"));
  }
  return zt::ok();
}

void SessionCore::resumeIfDeferred(Stream& s) {
  if (!s.deferred || dead_) {
    return;
  }
  if (role_ == Role::kClient && !s.established) {
    return;  // CONNECT data waits for the 200
  }
  s.deferred = false;
  if (int rv = nghttp2_session_resume_data(session_, s.id); rv != 0) {
    ZT_DEBUG("hbone: resume stream {}: {}", s.id, nghttp2_strerror(rv));
  }
}

zt::Status SessionCore::send(StreamId id, zt::ByteBuffer& data) {
  ZT_TRY_STATUS(usable());
  Stream* s = findOpen(id);
  if (s == nullptr) {
    return zt::fail(HboneErrc::kStreamNotFound);
  }
  if (s->terminal || s->ownerReset || s->failed || s->writeClosed) {
    return zt::fail(HboneErrc::kInvalidState, "stream is closed for writing");
  }
  if (role_ == Role::kServer && !s->established) {
    return zt::fail(HboneErrc::kInvalidState, "respond(200) first");
  }
  s->sendQueue.moveFrom(data);
  if (s->sendQueue.size() > config_.sendHighWatermark) {
    s->aboveHigh = true;
  }
  resumeIfDeferred(*s);
  return zt::ok();
}

size_t SessionCore::queuedBytes(StreamId id) const {
  const Stream* s = find(id);
  return s == nullptr ? 0 : s->sendQueue.size();
}

zt::Status SessionCore::closeWrite(StreamId id) {
  ZT_TRY_STATUS(usable());
  Stream* s = findOpen(id);
  if (s == nullptr) {
    return zt::fail(HboneErrc::kStreamNotFound);
  }
  if (s->terminal || s->ownerReset || s->failed) {
    return zt::fail(HboneErrc::kInvalidState, "stream is closed for writing");
  }
  if (role_ == Role::kServer && !s->established) {
    return zt::fail(HboneErrc::kInvalidState, "respond(200) first");
  }
  s->writeClosed = true;
  resumeIfDeferred(*s);
  return zt::ok();
}

void SessionCore::reset(StreamId id, uint32_t code) {
  if (dead_) {
    return;
  }
  Stream* s = findOpen(id);
  if (s == nullptr || s->ownerReset) {
    return;
  }
  s->ownerReset = true;
  s->aboveHigh = false;
  // Queued data stays until the stream closes: nghttp2 may hold a DATA frame of it mid-send.
  if (int rv = nghttp2_submit_rst_stream(session_, NGHTTP2_FLAG_NONE, id, code); rv != 0) {
    ZT_DEBUG("hbone: RST_STREAM {}: {}", id, nghttp2_strerror(rv));
  }
}

void SessionCore::consume(StreamId id, size_t n) {
  if (dead_) {
    return;
  }
  Stream* s = find(id);
  if (s == nullptr || s->closed) {
    return;
  }
  n = std::min(n, s->unconsumed);
  if (n == 0) {
    return;
  }
  s->unconsumed -= n;
  if (int rv = nghttp2_session_consume(session_, id, n); rv != 0) {
    ZT_DEBUG("hbone: consume stream {}: {}", id, nghttp2_strerror(rv));
  }
}

bool SessionCore::deliverable(const Stream& s) const {
  return s.reported && !s.closed && !s.terminal && !s.ownerReset && !s.failed &&
         (role_ == Role::kServer || s.established);
}

void SessionCore::notifyClosed(Stream& s, uint32_t code) {
  if (s.closed || !s.reported) {
    return;
  }
  if (!s.terminal && !s.ownerReset && !s.failed && !(s.peerEnded && code == h2::kNoError)) {
    s.terminal = true;
    observer_.onStreamReset(s.id, code);
  }
  s.terminal = true;
  s.closed = true;
  --activeStreams_;
  observer_.onStreamClosed(s.id);
}

void SessionCore::handleEndStream(Stream& s) {
  if (!s.reported || s.closed || s.terminal || s.ownerReset || s.failed || s.peerEnded) {
    return;
  }
  if (role_ == Role::kClient && !s.established) {
    return;
  }
  s.peerEnded = true;
  observer_.onEndOfStream(s.id);
}

bool SessionCore::takePrematureResetToken() {
  if (resetTokens_ >= 1.0) {
    resetTokens_ -= 1.0;
    return true;
  }
  return false;
}

// ---------------------------------------------------------------------------------------------
// nghttp2 callbacks

ssize_t SessionCore::onSend(nghttp2_session*, const uint8_t* data, size_t length, int, void* ud) {
  auto* self = static_cast<SessionCore*>(ud);
  if (self->out_ == nullptr || self->produced_ >= self->budget_) {
    return NGHTTP2_ERR_WOULDBLOCK;
  }
  self->out_->append(std::span<const uint8_t>(data, length));
  self->produced_ += length;
  return static_cast<ssize_t>(length);
}

int SessionCore::onSendData(nghttp2_session*, nghttp2_frame* frame, const uint8_t* framehd,
                            size_t length, nghttp2_data_source* source, void* ud) {
  auto* self = static_cast<SessionCore*>(ud);
  if (self->out_ == nullptr || self->produced_ >= self->budget_) {
    return NGHTTP2_ERR_WOULDBLOCK;
  }
  auto* s = static_cast<Stream*>(source->ptr);
  if (length > s->sendQueue.size()) {
    return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
  }
  zt::ByteBuffer& out = *self->out_;
  out.append(std::span<const uint8_t>(framehd, 9));
  const size_t padlen = frame->data.padlen;
  if (padlen > 0) {
    const uint8_t padLength = static_cast<uint8_t>(padlen - 1);
    out.append(std::span<const uint8_t>(&padLength, 1));
  }
  // The one copy of the send path: queued blocks -> output blocks.
  size_t remaining = length;
  while (remaining > 0) {
    std::array<iovec, 16> iov;
    size_t count = s->sendQueue.peek(iov.data(), iov.size(), remaining);
    size_t copied = 0;
    for (size_t i = 0; i < count; ++i) {
      out.append(
          std::span<const uint8_t>(static_cast<const uint8_t*>(iov[i].iov_base), iov[i].iov_len));
      copied += iov[i].iov_len;
    }
    s->sendQueue.drain(copied);
    remaining -= copied;
  }
  if (padlen > 1) {
    static constexpr std::array<uint8_t, 256> kZeros{};
    out.append(std::span<const uint8_t>(kZeros.data(), padlen - 1));
  }
  self->produced_ += 9 + length + padlen;
  ++self->dataFramesSent_;
  if (s->aboveHigh && s->sendQueue.size() <= self->config_.sendLowWatermark) {
    s->aboveHigh = false;
    self->writable_.push_back(s->id);
  }
  return self->produced_ >= self->budget_ ? NGHTTP2_ERR_PAUSE : 0;
}

ssize_t SessionCore::onReadLength(nghttp2_session*, uint8_t, int32_t, int32_t connWindow,
                                  int32_t streamWindow, uint32_t remoteMaxFrame, void* ud) {
  auto* self = static_cast<SessionCore*>(ud);
  int64_t len = self->config_.maxSendFramePayload;
  len = std::min<int64_t>(len, connWindow);
  len = std::min<int64_t>(len, streamWindow);
  len = std::min<int64_t>(len, remoteMaxFrame);
  return static_cast<ssize_t>(std::max<int64_t>(len, 1));
}

ssize_t SessionCore::onRead(nghttp2_session*, int32_t, uint8_t*, size_t length, uint32_t* flags,
                            nghttp2_data_source* source, void* ud) {
  auto* self = static_cast<SessionCore*>(ud);
  auto* s = static_cast<Stream*>(source->ptr);
  bool blocked = self->dead_ || s->ownerReset || s->terminal || s->failed ||
                 (self->role_ == Role::kClient && !s->established);
  size_t n = blocked ? 0 : std::min(length, s->sendQueue.size());
  if (blocked || (n == 0 && !s->writeClosed)) {
    s->deferred = true;
    return NGHTTP2_ERR_DEFERRED;
  }
  *flags |= NGHTTP2_DATA_FLAG_NO_COPY;
  if (s->writeClosed && n == s->sendQueue.size()) {
    *flags |= NGHTTP2_DATA_FLAG_EOF;  // END_STREAM: tunnels end this way, not with RST (§8)
  }
  return static_cast<ssize_t>(n);
}

int SessionCore::onBeginHeaders(nghttp2_session*, const nghttp2_frame* frame, void* ud) {
  auto* self = static_cast<SessionCore*>(ud);
  if (self->pendingAbort_) {
    return NGHTTP2_ERR_CALLBACK_FAILURE;
  }
  if (frame->hd.type != NGHTTP2_HEADERS) {
    return 0;
  }
  const StreamId id = frame->hd.stream_id;
  if (self->role_ == Role::kServer && frame->headers.cat == NGHTTP2_HCAT_REQUEST) {
    auto s = std::make_unique<Stream>();
    s->id = id;
    s->parser = std::make_unique<ConnectRequestParser>();
    self->streams_[id] = std::move(s);
    return 0;
  }
  if (Stream* s = self->find(id)) {
    s->headerBytes = 0;
    s->status = self->role_ == Role::kClient ? 0 : s->status;
    if (self->role_ == Role::kClient && !s->finalResponse) {
      s->responseBaggage.clear();
    }
  }
  return 0;
}

int SessionCore::onHeader(nghttp2_session*, const nghttp2_frame* frame, const uint8_t* name,
                          size_t namelen, const uint8_t* value, size_t valuelen, uint8_t,
                          void* ud) {
  auto* self = static_cast<SessionCore*>(ud);
  if (self->pendingAbort_) {
    return NGHTTP2_ERR_CALLBACK_FAILURE;
  }
  Stream* s = self->find(frame->hd.stream_id);
  if (s == nullptr) {
    return 0;
  }
  // nghttp2 does not enforce our SETTINGS_MAX_HEADER_LIST_SIZE (RFC 9113 §6.5.2 sizes). Over it,
  // the stream is reset (INTERNAL_ERROR) and the rest of the block is decoded without callbacks.
  s->headerBytes += namelen + valuelen + 32;
  if (s->headerBytes > self->config_.maxHeaderListSize) {
    return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
  }
  std::string_view n(reinterpret_cast<const char*>(name), namelen);
  std::string_view v(reinterpret_cast<const char*>(value), valuelen);
  if (self->role_ == Role::kServer) {
    if (s->parser) {
      s->parser->add(n, v);
    }
    return 0;
  }
  if (s->finalResponse) {
    return 0;  // trailers: ignored
  }
  if (n == ":status") {
    int status = 0;
    for (char c : v) {
      status = (c >= '0' && c <= '9' && status < 1000) ? status * 10 + (c - '0') : 1000;
    }
    s->status = v.size() == 3 ? status : 0;
  } else if (n == "baggage") {
    if (!s->responseBaggage.empty()) {
      s->responseBaggage += ", ";
    }
    s->responseBaggage.append(v);
  }
  return 0;
}

int SessionCore::handleHeadersFrame(const nghttp2_frame& frame, Stream& s) {
  const bool endStream = (frame.hd.flags & NGHTTP2_FLAG_END_STREAM) != 0;
  const StreamId id = s.id;
  if (role_ == Role::kServer) {
    if (s.parser && goawaySent_ && id > goawayLastStreamId_) {
      // Opened after our GOAWAY was submitted but before it went out: the client will treat it
      // as refused when the GOAWAY arrives, so it must not start a tunnel here.
      s.parser.reset();
      nghttp2_submit_rst_stream(session_, NGHTTP2_FLAG_NONE, id, NGHTTP2_REFUSED_STREAM);
      return 0;
    }
    if (s.parser) {
      auto parser = std::move(s.parser);
      ++peerStreams_;
      auto request = std::move(*parser).finish();
      if (!request) {
        // Malformed CONNECT: answered here, never reported (ztunnel-compat.md §2.4 step 3).
        ZT_DEBUG("hbone: stream {}: 400: {}", id, request.error().message());
        if (auto st = submitResponse(s, 400, {}); !st) {
          return NGHTTP2_ERR_CALLBACK_FAILURE;
        }
        return 0;
      }
      s.reported = true;
      ++activeStreams_;
      server_->onConnectRequest(id, std::move(*request));
    } else if (!endStream) {
      // A later header block is a trailer section, which must end the stream (RFC 9113 §8.1);
      // without http messaging nghttp2 leaves that to us.
      nghttp2_submit_rst_stream(session_, NGHTTP2_FLAG_NONE, id, NGHTTP2_PROTOCOL_ERROR);
      return 0;
    }
  } else if (!s.finalResponse) {
    if (s.status >= 100 && s.status < 200) {
      return 0;  // informational; the final response follows
    }
    s.finalResponse = true;
    if (s.ownerReset || s.terminal) {
      return 0;
    }
    if (!s.responseBaggage.empty()) {
      client_->onResponseBaggage(id, s.responseBaggage);
    }
    if (s.status == 200) {
      s.established = true;
      client_->onTunnelResponse(id, 200);
      resumeIfDeferred(s);
    } else {
      s.failed = true;
      client_->onTunnelResponse(id, s.status);
      nghttp2_submit_rst_stream(session_, NGHTTP2_FLAG_NONE, id, NGHTTP2_CANCEL);
      return 0;
    }
  }
  if (endStream) {
    handleEndStream(s);
  }
  return 0;
}

int SessionCore::handleRstStream(const nghttp2_frame& frame) {
  Stream* s = find(frame.hd.stream_id);
  if (s == nullptr) {
    return 0;
  }
  if (role_ == Role::kServer && !s->responseSent && !takePrematureResetToken()) {
    callbackError_ = zt::Error(HboneErrc::kFlood, "premature stream resets (rapid reset)");
    return NGHTTP2_ERR_CALLBACK_FAILURE;
  }
  if (!s->reported || s->closed || s->terminal || s->ownerReset || s->failed) {
    return 0;
  }
  const uint32_t code = frame.rst_stream.error_code;
  const bool eof = code == h2::kNoError || code == h2::kCancel;
  if (s->established && eof) {
    // ztunnel-compat.md §2.6: NO_ERROR/CANCEL on an established tunnel is the reader's EOF.
    if (!s->peerEnded) {
      s->peerEnded = true;
      observer_.onEndOfStream(s->id);
    }
  } else {
    observer_.onStreamReset(s->id, code);
  }
  s->terminal = true;
  return 0;
}

int SessionCore::onFrameRecv(nghttp2_session*, const nghttp2_frame* frame, void* ud) {
  auto* self = static_cast<SessionCore*>(ud);
  if (self->pendingAbort_) {
    return NGHTTP2_ERR_CALLBACK_FAILURE;
  }
  switch (frame->hd.type) {
    case NGHTTP2_DATA: {
      const bool endStream = (frame->hd.flags & NGHTTP2_FLAG_END_STREAM) != 0;
      if (frame->hd.length > frame->data.padlen) {
        self->consecutiveEmptyFrames_ = 0;
      } else if (frame->hd.length > 0 && !endStream) {
        // Padding only: as empty as a zero-length frame (those are counted in onBeginFrame).
        if (int rv = self->countEmptyFrame(); rv != 0) {
          return rv;
        }
      }
      if (endStream) {
        if (Stream* s = self->find(frame->hd.stream_id)) {
          self->handleEndStream(*s);
        }
      }
      return 0;
    }
    case NGHTTP2_HEADERS: {
      self->consecutiveEmptyFrames_ = 0;
      if (Stream* s = self->find(frame->hd.stream_id)) {
        return self->handleHeadersFrame(*frame, *s);
      }
      return 0;
    }
    case NGHTTP2_RST_STREAM:
      return self->handleRstStream(*frame);
    case NGHTTP2_GOAWAY:
      if (!self->goawayReceived_) {
        self->goawayReceived_ = true;
        if (self->client_ != nullptr) {
          self->client_->onGoaway();
        }
      }
      return 0;
    case NGHTTP2_PING:
      if ((frame->hd.flags & NGHTTP2_FLAG_ACK) != 0 && self->pingOutstanding_) {
        std::array<uint8_t, 8> expected{};
        for (size_t i = 0; i < 8; ++i) {
          expected[i] = static_cast<uint8_t>(self->pingSeq_ >> (56 - 8 * i));
        }
        if (std::memcmp(frame->ping.opaque_data, expected.data(), 8) == 0) {
          self->pingOutstanding_ = false;
        }
      }
      return 0;
    default:
      return 0;
  }
}

int SessionCore::onDataChunk(nghttp2_session*, uint8_t, int32_t id, const uint8_t* data, size_t len,
                             void* ud) {
  auto* self = static_cast<SessionCore*>(ud);
  if (self->pendingAbort_) {
    return NGHTTP2_ERR_CALLBACK_FAILURE;
  }
  Stream* s = self->find(id);
  if (s != nullptr && self->deliverable(*s)) {
    s->unconsumed += len;
    self->observer_.onData(id, std::span<const uint8_t>(data, len));
    return 0;
  }
  // Nobody will consume these bytes (error response, reset, unknown): give the window back now.
  nghttp2_session_consume(self->session_, id, len);
  return 0;
}

int SessionCore::onFrameSend(nghttp2_session*, const nghttp2_frame* frame, void* ud) {
  auto* self = static_cast<SessionCore*>(ud);
  switch (frame->hd.type) {
    case NGHTTP2_HEADERS:
      if (self->role_ == Role::kServer) {
        if (Stream* s = self->find(frame->hd.stream_id)) {
          s->responseSent = true;
          // An error response ends our side; if the client is still sending, tell it to stop
          // (RFC 9113 §8.1) so the stream slot is freed now.
          if (s->failed && nghttp2_session_get_stream_remote_close(self->session_, s->id) == 0) {
            nghttp2_submit_rst_stream(self->session_, NGHTTP2_FLAG_NONE, s->id, NGHTTP2_NO_ERROR);
          }
        }
      }
      return 0;
    case NGHTTP2_GOAWAY:
      self->goawaySent_ = true;
      if (frame->goaway.error_code != NGHTTP2_NO_ERROR) {
        self->localGoawayCode_ = frame->goaway.error_code;
      }
      return 0;
    default:
      return 0;
  }
}

int SessionCore::onStreamClose(nghttp2_session*, int32_t id, uint32_t code, void* ud) {
  auto* self = static_cast<SessionCore*>(ud);
  auto it = self->streams_.find(id);
  if (it == self->streams_.end()) {
    return 0;
  }
  // Out of the map before the observer hears of it: onStreamClosed may open a new stream
  // (rehashing the map), and calls about this id from there must find nothing.
  std::unique_ptr<Stream> s = std::move(it->second);
  self->streams_.erase(it);
  // Bytes the owner still holds unconsumed: return them to the connection window, or the
  // connection would shrink by that much for good.
  if (s->unconsumed > 0) {
    nghttp2_session_consume_connection(self->session_, s->unconsumed);
    s->unconsumed = 0;
  }
  self->notifyClosed(*s, code);
  return 0;
}

int SessionCore::countEmptyFrame() {
  if (++consecutiveEmptyFrames_ > config_.maxConsecutiveEmptyFrames) {
    callbackError_ = zt::Error(HboneErrc::kFlood, "empty DATA frames");
    return NGHTTP2_ERR_CALLBACK_FAILURE;
  }
  return 0;
}

// Sees the header of every frame nghttp2 processes (not those it drops outright, like DATA for
// closed streams), so floods of frames that cost work but carry nothing are counted here
// (reliability.md §2.3).
int SessionCore::onBeginFrame(nghttp2_session*, const nghttp2_frame_hd* hd, void* ud) {
  auto* self = static_cast<SessionCore*>(ud);
  if (self->pendingAbort_) {
    return NGHTTP2_ERR_CALLBACK_FAILURE;
  }
  switch (hd->type) {
    case NGHTTP2_DATA:
      if (hd->length == 0 && (hd->flags & NGHTTP2_FLAG_END_STREAM) == 0) {
        return self->countEmptyFrame();
      }
      return 0;
    case NGHTTP2_PRIORITY:
      // Envoy's max_inbound_priority_frames_per_stream rule.
      if (++self->priorityFrames_ >
          uint64_t{self->config_.maxPriorityFramesPerStream} * (1 + self->peerStreams_)) {
        self->callbackError_ = zt::Error(HboneErrc::kFlood, "PRIORITY frames");
        return NGHTTP2_ERR_CALLBACK_FAILURE;
      }
      return 0;
    case NGHTTP2_WINDOW_UPDATE:
      // Envoy's max_inbound_window_update_frames_per_data_frame_sent rule: a peer has reason to
      // open windows only for data we sent (and once per stream / for the connection).
      if (++self->windowUpdates_ >
          1 + 2 * (self->peerStreams_ + uint64_t{self->config_.maxWindowUpdatesPerDataFrameSent} *
                                            self->dataFramesSent_)) {
        self->callbackError_ = zt::Error(HboneErrc::kFlood, "WINDOW_UPDATE frames");
        return NGHTTP2_ERR_CALLBACK_FAILURE;
      }
      return 0;
    default:
      return 0;
  }
}

}  // namespace hbone::detail
