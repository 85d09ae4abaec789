#include "ztunnel/proxy/worker.h"

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

#include <algorithm>
#include <cerrno>

#include "ztunnel/core/assert.h"
#include "ztunnel/core/log.h"
#include "ztunnel/io/socket_options.h"

namespace zt::proxy {

namespace {

// Operation tags. The slot/gen of every token is the Socket's; timers carry their own cookies.
constexpr io::Op kOpAccept = io::Op::kAccept;
constexpr io::Op kOpRecv = io::Op::kRecv;
constexpr io::Op kOpSend = io::Op::kSend;
constexpr io::Op kOpConnect = io::Op::kConnect;
constexpr io::Op kOpConnectTimeout = io::Op::kLinkTimeout;
constexpr io::Op kOpCancel = io::Op::kCancel;

// Bytes handed to one sendmsg: enough to keep the socket busy, small enough to keep latency and
// the pinned part of the queue bounded.
constexpr size_t kMaxSendBytes = 1 << 20;

// How often an HBONE connection's session is ticked (PING schedule and timeout checks).
constexpr Duration kTickInterval = std::chrono::seconds(1);

// Accept errors such as EMFILE re-arm after this pause instead of spinning.
constexpr Duration kAcceptRetry = std::chrono::milliseconds(100);

}  // namespace

Worker::Worker(const ProxyInputs& inputs, unsigned index, WorkerMailbox& mailbox)
    : inputs_(inputs),
      config_(inputs.config),
      index_(index),
      mailbox_(mailbox),
      clientH2_(hbone::SessionConfig::clientDefaults()),
      serverH2_(hbone::SessionConfig::serverDefaults()),
      origSrcUsable_(inputs.config.origSrc != OrigSrcMode::kOff) {
  for (hbone::SessionConfig* h2 : {&clientH2_, &serverH2_}) {
    h2->streamWindow = config_.h2StreamWindow;
    h2->connectionWindow = config_.h2ConnectionWindow;
    h2->maxFrameSize = config_.h2FrameSize;
  }
  clientH2_.maxStreamsPerConnection = config_.poolMaxStreamsPerConnection;
  // ztunnel: the client may buffer one stream window per tunnel; the server 400 KiB.
  clientH2_.sendHighWatermark = config_.h2StreamWindow;
  clientH2_.sendLowWatermark = config_.h2StreamWindow / 4;
}

Worker::~Worker() {
  // Destroy connections before sockets and the buffer ring: sessions hold no io resources, but
  // keep the order explicit. The ring (in loop_) goes last and cancels whatever is left.
  tunnels_.clear();
  conns_.clear();
  sockets_.clear();
  bufRing_.reset();
}

Result<std::unique_ptr<Worker>> Worker::create(const ProxyInputs& inputs, WorkerListeners listeners,
                                               unsigned index, WorkerMailbox& mailbox) {
  std::unique_ptr<Worker> w(new Worker(inputs, index, mailbox));
  ZT_TRY_STATUS(w->init(std::move(listeners)));
  return w;
}

Status Worker::init(WorkerListeners listeners) {
  io::EventLoopOptions options;
  options.ring.entries = config_.ringEntries;
  options.timerResolution = std::chrono::milliseconds(1);
  auto loop = io::EventLoop<WorkerMessage>::create(mailbox_, options);
  if (!loop) {
    return fail(std::move(loop).error());
  }
  loop_ = std::move(*loop);
  io::BufRingOptions bufOptions;
  bufOptions.groupId = 1;
  bufOptions.count = config_.recvBufferCount;
  bufOptions.bufferSize = config_.recvBufferSize;
  auto ring = io::BufRing::create(loop_->ring(), bufOptions);
  if (!ring) {
    return fail(std::move(ring).error());
  }
  bufRing_ = std::move(*ring);
  if (listeners.outbound) {
    ZT_TRY_STATUS(addListener(std::move(listeners.outbound), ListenerKind::kOutbound));
  }
  if (listeners.inbound) {
    ZT_TRY_STATUS(addListener(std::move(listeners.inbound), ListenerKind::kInbound));
  }
  if (listeners.inboundPlaintext) {
    ZT_TRY_STATUS(
        addListener(std::move(listeners.inboundPlaintext), ListenerKind::kInboundPlaintext));
  }
  if (listeners.socks5) {
    ZT_TRY_STATUS(addListener(std::move(listeners.socks5), ListenerKind::kSocks5));
  }
  return ok();
}

Status Worker::addListener(UniqueFd fd, ListenerKind kind) {
  SocketHandle h = newSocket(std::move(fd));
  Socket& s = *socket(h);
  s.listener = kind;
  listeners_.push_back(h);
  armAccept(h, s);
  return ok();
}

Status Worker::run() {
  Status status = loop_->run(*this);
  ZT_DEBUG("worker {} stopped: {} tunnels, {} HBONE connections left", index_, tunnels_.size(),
           conns_.size());
  return status;
}

void Worker::stop() {
  tunnels_.forEach([&](TunnelHandle h, Tunnel& t) {
    if (!t.dead) {
      abortTunnel(h, t, ResponseFlag::kConnect, "proxy shutting down");
    }
  });
  conns_.forEach([&](ConnHandle h, HboneConn& c) {
    if (!c.dead) {
      failConn(h, c, ResponseFlag::kConnect, "proxy shutting down");
    }
  });
  for (SocketHandle h : listeners_) {
    closeSocket(h, false);
  }
  listeners_.clear();
  loop_->stop();
}

void Worker::drain(MonotonicTime deadline) {
  if (draining_) {
    return;
  }
  draining_ = true;
  for (SocketHandle h : listeners_) {
    closeSocket(h, false);
  }
  listeners_.clear();
  conns_.forEach([&](ConnHandle h, HboneConn& c) {
    if (c.server) {
      c.server->goAway();
      markDirty(h, c);
    }
  });
  loop_->scheduleAt(deadline, timerCookie(TimerKind::kDrain, 0, 0));
}

// ---------------------------------------------------------------------------------------------
// Sockets

Worker::SocketHandle Worker::newSocket(UniqueFd fd) {
  SocketHandle h = sockets_.emplace();
  Socket& s = *sockets_.get(h);
  s.fd = std::move(fd);
  return h;
}

void Worker::setOwner(SocketHandle h, OwnerKind kind, uint32_t slot, uint16_t gen) {
  if (Socket* s = socket(h)) {
    s->ownerKind = kind;
    s->ownerSlot = slot;
    s->ownerGen = gen;
  }
}

void Worker::armAccept(SocketHandle h, Socket& s) {
  if (s.accepting || s.closing) {
    return;
  }
  loop_->ring().prepAcceptMultishot(s.fd.get(), SocketMap::tokenFor(h, kOpAccept));
  s.accepting = true;
  ++s.inflight;
}

void Worker::armRecv(SocketHandle h, Socket& s) {
  if (s.recvArmed || s.recvParked || !s.recvWanted || s.readEof || s.closing || s.failed ||
      !s.connected) {
    return;
  }
  io_uring_sqe* sqe = loop_->ring().prepRecv(s.fd.get(), nullptr, bufRing_->bufferSize(),
                                             SocketMap::tokenFor(h, kOpRecv));
  sqe->flags |= IOSQE_BUFFER_SELECT;
  sqe->buf_group = bufRing_->groupId();
  s.recvArmed = true;
  ++s.inflight;
}

void Worker::wantRecv(SocketHandle h, bool want) {
  Socket* s = socket(h);
  if (s == nullptr) {
    return;
  }
  s->recvWanted = want;
  if (want) {
    armRecv(h, *s);
  }
  // Pausing does not cancel an armed recv: at most one more buffer arrives, then no re-arm.
}

void Worker::trySend(SocketHandle h, Socket& s) {
  if (s.sendArmed || s.closing || s.failed || !s.connected) {
    return;
  }
  if (s.out.empty()) {
    maybeShutdown(h, s);
    return;
  }
  size_t n = s.out.peek(s.iov, kMaxIov, kMaxSendBytes);
  s.msg = msghdr{};
  s.msg.msg_iov = s.iov;
  s.msg.msg_iovlen = n;
  // Fast path: the socket usually has room, and one direct non-blocking sendmsg costs less than
  // an SQE, its completion and another loop pass (latency per hop and CPU per byte). io_uring
  // takes over only when the socket is full. The owner hears about the bytes in afterDispatch,
  // never from inside this primitive.
  ssize_t sent = ::sendmsg(s.fd.get(), &s.msg, MSG_DONTWAIT | MSG_NOSIGNAL);
  if (sent < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
    s.failed = true;
    failedSends_.push_back({h, errno});
    return;
  }
  if (sent > 0) {
    s.out.drain(static_cast<size_t>(sent));
    sentNotices_.push_back({h, static_cast<uint32_t>(sent)});
    if (s.out.empty()) {
      maybeShutdown(h, s);
      return;
    }
    n = s.out.peek(s.iov, kMaxIov, kMaxSendBytes);
    s.msg.msg_iovlen = n;
  }
  loop_->ring().prepSendmsg(s.fd.get(), &s.msg, SocketMap::tokenFor(h, kOpSend));
  s.sendArmed = true;
  ++s.inflight;
}

void Worker::maybeShutdown(SocketHandle h, Socket& s) {
  if (s.closeWhenFlushed && s.out.empty() && !s.sendArmed) {
    closeSocket(h, false);
    return;
  }
  if (!s.shutdownWanted || s.shutdownDone || s.sendArmed || !s.out.empty() || s.closing ||
      s.failed || !s.connected) {
    return;
  }
  // A direct syscall: shutdown never blocks, while IORING_OP_SHUTDOWN is always punted to an
  // io-wq kernel thread. Errors (ENOTCONN: the peer is gone) show up on the read side.
  ::shutdown(s.fd.get(), SHUT_WR);
  s.shutdownDone = true;
  // The FIN was the last thing this direction waited for: the owner re-checks after the batch.
  if (s.ownerKind == OwnerKind::kTunnel) {
    finishChecks_.push_back(TunnelHandle{s.ownerSlot, s.ownerGen});
  }
}

void Worker::closeSocket(SocketHandle h, bool abortive) {
  Socket* s = socket(h);
  if (s == nullptr || s->closing) {
    return;
  }
  s->closing = true;
  s->ownerKind = OwnerKind::kNone;
  if (abortive && s->fd) {
    // RST instead of FIN: how a reset propagates to the application.
    linger l{1, 0};
    ::setsockopt(s->fd.get(), SOL_SOCKET, SO_LINGER, &l, sizeof(l));
  }
  if (s->inflight > 0) {
    loop_->ring().prepCancelFd(s->fd.get(), SocketMap::tokenFor(h, kOpCancel));
    ++s->inflight;
    return;
  }
  releaseSocketIfDone(h, *s);
}

void Worker::releaseSocketIfDone(SocketHandle h, Socket& s) {
  if (s.closing && s.inflight == 0) {
    sockets_.erase(h.slot);  // closes the fd
  }
}

void Worker::startConnect(SocketHandle h, Socket& s, const SocketAddress& to) {
  s.connectLen = to.toSockaddr(s.connectAddr);
  loop_->ring().prepConnectWithTimeout(
      s.fd.get(), reinterpret_cast<const sockaddr*>(&s.connectAddr), s.connectLen,
      SocketMap::tokenFor(h, kOpConnect), config_.connectTimeout,
      SocketMap::tokenFor(h, kOpConnectTimeout));
  s.inflight += 2;
}

// ---------------------------------------------------------------------------------------------
// Completions

void Worker::onCompletion(io::Token token, int32_t res, uint32_t flags) {
  // A recv completion may carry a provided buffer even when the socket is gone: take it first so
  // it always returns to the ring.
  std::optional<io::BufRef> buffer;
  if (token.op == kOpRecv) {
    buffer = bufRing_->takeFromCqe(res, flags);
  }
  Socket* s = sockets_.resolve(token);
  if (s == nullptr) {
    return;  // counted as stale by the slot map
  }
  SocketHandle h{token.slot, token.gen};
  if (!(token.op == kOpAccept && io::hasMore(flags))) {
    ZT_ASSERT(s->inflight > 0);
    --s->inflight;
  }
  switch (token.op) {
    case kOpAccept:
      onAccept(h, *s, res, flags);
      break;
    case kOpRecv:
      s->recvArmed = false;
      if (res > 0 && buffer && !s->closing) {
        // Every consumer copies (or decrypts) what it needs, so the buffer goes back right after.
        socketData(h, *s, buffer->data());
        buffer.reset();
      } else {
        buffer.reset();
        onRecv(h, *s, res, flags);
      }
      if (Socket* again = socket(h)) {
        armRecv(h, *again);
      }
      break;
    case kOpSend:
      onSend(h, *s, res);
      break;
    case kOpConnect:
      onConnect(h, *s, res);
      break;
    case kOpConnectTimeout:
      break;  // the connect's own completion reports the timeout as -ECANCELED
    case kOpCancel:
      break;
    default:
      ZT_WARN("worker {}: unexpected completion op {}", index_, static_cast<int>(token.op));
      break;
  }
  if (Socket* again = socket(h)) {
    releaseSocketIfDone(h, *again);
  }
}

void Worker::onAccept(SocketHandle h, Socket& s, int32_t res, uint32_t flags) {
  if (!io::hasMore(flags)) {
    s.accepting = false;
  }
  if (res < 0) {
    if (res != -ECANCELED && !s.closing) {
      ZT_WARN("worker {}: accept failed: {}", index_, std::strerror(-res));
      if (!s.accepting) {
        // Out of fds or memory: shed load for a moment instead of spinning on the error.
        loop_->scheduleAfter(kAcceptRetry, timerCookie(TimerKind::kAcceptRetry, h.slot, h.gen));
      }
    }
    return;
  }
  UniqueFd fd(res);
  if (!s.accepting && !s.closing) {
    armAccept(h, s);
  }
  if (s.closing || draining_) {
    return;  // fd closes
  }
  switch (s.listener) {
    case ListenerKind::kOutbound:
      acceptOutbound(std::move(fd), false);
      break;
    case ListenerKind::kSocks5:
      acceptOutbound(std::move(fd), true);
      break;
    case ListenerKind::kInbound:
      acceptInboundHbone(std::move(fd));
      break;
    case ListenerKind::kInboundPlaintext:
      acceptInboundPlaintext(std::move(fd));
      break;
  }
}

void Worker::onRecv(SocketHandle h, Socket& s, int32_t res, uint32_t flags) {
  (void)flags;
  if (s.closing) {
    return;
  }
  if (res == 0) {
    s.readEof = true;
    socketEof(h, s);
    return;
  }
  if (res == -ENOBUFS) {
    // Every provided buffer is in use: retry once buffers are back (afterDispatch), not now.
    s.recvParked = true;
    bufRing_->park(SocketMap::tokenFor(h, kOpRecv));
    return;
  }
  if (res == -ECANCELED || res == -EINTR || res == -EAGAIN) {
    return;  // re-armed by the caller if still wanted
  }
  s.readEof = true;
  s.failed = true;
  socketError(h, s, -res, "recv");
}

void Worker::onSend(SocketHandle h, Socket& s, int32_t res) {
  s.sendArmed = false;
  if (res < 0) {
    if (res == -ECANCELED || s.closing) {
      return;
    }
    s.failed = true;
    socketError(h, s, -res, "send");
    return;
  }
  size_t n = static_cast<size_t>(res);
  s.out.drain(n);
  if (s.closing) {
    return;
  }
  socketSent(h, s, n);
  if (Socket* again = socket(h)) {
    trySend(h, *again);
  }
}

void Worker::onConnect(SocketHandle h, Socket& s, int32_t res) {
  if (s.closing) {
    return;
  }
  if (res == 0) {
    s.connected = true;
  }
  // -ECANCELED here means the linked timeout fired.
  socketConnected(h, s, res == -ECANCELED ? ETIMEDOUT : -res);
}

void Worker::rearmParked() {
  bufRing_->rearmParked([&](io::Token token) {
    if (Socket* s = sockets_.get(token.slot, token.gen)) {
      s->recvParked = false;
      armRecv(SocketHandle{token.slot, token.gen}, *s);
    }
  });
}

// ---------------------------------------------------------------------------------------------
// Routing socket events to owners

template <class OnTunnel, class OnConn>
void Worker::toOwner(const Socket& s, OnTunnel&& onTunnel, OnConn&& onConn) {
  switch (s.ownerKind) {
    case OwnerKind::kTunnel: {
      TunnelHandle th{s.ownerSlot, s.ownerGen};
      if (Tunnel* t = tunnel(th); t != nullptr && !t->dead) {
        onTunnel(th, *t);
      }
      break;
    }
    case OwnerKind::kHbone: {
      ConnHandle ch{s.ownerSlot, s.ownerGen};
      if (HboneConn* c = conn(ch); c != nullptr && !c->dead) {
        onConn(ch, *c);
      }
      break;
    }
    case OwnerKind::kNone:
      break;
  }
}

void Worker::socketData(SocketHandle h, Socket& s, std::span<const uint8_t> data) {
  toOwner(
      s, [&](TunnelHandle th, Tunnel& t) { tunnelSocketData(th, t, sideOfSocket(t, h), data); },
      [&](ConnHandle ch, HboneConn& c) { hboneData(ch, c, data); });
}

void Worker::socketEof(SocketHandle h, Socket& s) {
  toOwner(
      s, [&](TunnelHandle th, Tunnel& t) { tunnelSocketEof(th, t, sideOfSocket(t, h)); },
      [&](ConnHandle ch, HboneConn& c) { hboneEof(ch, c); });
}

void Worker::socketError(SocketHandle h, Socket& s, int err, const char* what) {
  (void)h;
  std::string error = std::string(what) + ": " + std::strerror(err);
  toOwner(
      s,
      [&](TunnelHandle th, Tunnel& t) {
        abortTunnel(th, t, ResponseFlag::kConnect, std::move(error));
      },
      [&](ConnHandle ch, HboneConn& c) {
        failConn(ch, c, ResponseFlag::kConnect, "HBONE transport " + error);
      });
}

void Worker::socketSent(SocketHandle h, Socket& s, size_t n) {
  toOwner(
      s, [&](TunnelHandle th, Tunnel& t) { tunnelSocketSent(th, t, sideOfSocket(t, h), n); },
      [&](ConnHandle ch, HboneConn& c) { hboneSent(ch, c); });
}

void Worker::socketConnected(SocketHandle h, Socket& s, int err) {
  toOwner(
      s, [&](TunnelHandle th, Tunnel& t) { tunnelSocketConnected(th, t, sideOfSocket(t, h), err); },
      [&](ConnHandle ch, HboneConn& c) { hboneConnected(ch, c, err); });
}

// ---------------------------------------------------------------------------------------------
// Timers, messages, end of batch

void Worker::onTimer(uint64_t cookie) {
  auto kind = static_cast<TimerKind>(cookie >> 56);
  uint32_t slot = static_cast<uint32_t>(cookie);
  uint16_t gen = static_cast<uint16_t>(cookie >> 32);
  switch (kind) {
    case TimerKind::kHandshake: {
      ConnHandle ch{slot, gen};
      if (HboneConn* c = conn(ch);
          c != nullptr && !c->dead && c->phase != HboneConn::Phase::kReady) {
        c->handshakeTimer = {};
        failConn(ch, *c,
                 c->phase == HboneConn::Phase::kConnecting ? ResponseFlag::kNetworkPolicy
                                                           : ResponseFlag::kTlsFailure,
                 "handshake timed out");
      }
      break;
    }
    case TimerKind::kTick: {
      ConnHandle ch{slot, gen};
      HboneConn* c = conn(ch);
      if (c == nullptr || c->dead) {
        break;
      }
      c->tickTimer = loop_->scheduleAfter(kTickInterval, cookie);
      Status st = c->isClient ? (c->client ? c->client->tick(loop_->now()) : ok())
                              : (c->server ? c->server->tick(loop_->now()) : ok());
      if (!st) {
        failConn(ch, *c, ResponseFlag::kConnect, st.error().message());
        break;
      }
      markDirty(ch, *c);
      break;
    }
    case TimerKind::kIdle: {
      ConnHandle ch{slot, gen};
      HboneConn* c = conn(ch);
      if (c == nullptr || c->dead) {
        break;
      }
      c->idleTimer = {};
      if (c->activeStreams() == 0) {
        if (c->client) {
          c->client->goAway();
        }
        closeConnGracefully(ch, *c);
      }
      break;
    }
    case TimerKind::kDrain:
      if (!tunnels_.empty() || !conns_.empty()) {
        ZT_INFO("worker {}: drain deadline reached, closing {} tunnels", index_, tunnels_.size());
      }
      stop();
      break;
    case TimerKind::kAcceptRetry: {
      SocketHandle h{slot, gen};
      if (Socket* s = socket(h)) {
        armAccept(h, *s);
      }
      break;
    }
  }
}

void Worker::onMessage(WorkerMessage&& message) {
  message(*this);
}

void Worker::afterDispatch() {
  // Work the batch left behind, until none is left: bytes sent inline (owners consume, resume
  // sources, finish), failed inline sends, tunnels to re-check, and the HTTP/2 + TLS output of
  // every connection touched (one produce/encrypt pass per connection per round, however many
  // streams wrote). Each step may create work for the others; each round moves bytes or closes
  // things, so it ends.
  while (!sentNotices_.empty() || !failedSends_.empty() || !finishChecks_.empty() ||
         !dirtyConns_.empty()) {
    std::vector<SentNotice> sent;
    sent.swap(sentNotices_);
    for (const SentNotice& notice : sent) {
      if (Socket* s = socket(notice.socket); s != nullptr && !s->closing) {
        socketSent(notice.socket, *s, notice.bytes);
      }
    }
    std::vector<FailedSend> failed;
    failed.swap(failedSends_);
    for (const FailedSend& f : failed) {
      if (Socket* s = socket(f.socket); s != nullptr && !s->closing) {
        socketError(f.socket, *s, f.err, "send");
      }
    }
    std::vector<TunnelHandle> checks;
    checks.swap(finishChecks_);
    for (TunnelHandle th : checks) {
      if (Tunnel* t = tunnel(th)) {
        checkFinished(th, *t);
      }
    }
    std::vector<ConnHandle> dirty;
    dirty.swap(dirtyConns_);
    for (ConnHandle ch : dirty) {
      if (HboneConn* c = conn(ch)) {
        c->dirty = false;
        if (!c->dead) {
          flushConn(ch, *c);
        }
      }
    }
  }

  for (TunnelHandle th : deadTunnels_) {
    tunnels_.erase(th);
  }
  deadTunnels_.clear();
  for (ConnHandle ch : deadConns_) {
    conns_.erase(ch);
  }
  deadConns_.clear();

  bufRing_->flush();
  rearmParked();

  if (draining_ && !loop_->stopRequested()) {
    finishDrain();
  }
}

void Worker::finishDrain() {
  if (!closingAll_ && tunnels_.empty()) {
    bool busy = false;
    conns_.forEach([&](ConnHandle, HboneConn& c) { busy = busy || c.activeStreams() > 0; });
    if (busy) {
      return;
    }
    // Every tunnel is done: say goodbye on every connection and let the last bytes go out.
    closingAll_ = true;
    conns_.forEach([&](ConnHandle h, HboneConn& c) {
      if (c.client) {
        c.client->goAway();
      } else if (c.server) {
        c.server->goAway();
      }
      closeConnGracefully(h, c);
    });
  }
  // Return only once every socket is closed: operations prepared now are submitted by the next
  // loop iteration, and leaving earlier would drop them (e.g. a peer's last END_STREAM).
  if (closingAll_ && sockets_.empty()) {
    loop_->stop();
  }
}

}  // namespace zt::proxy
