// HBONE connections: TLS + HTTP/2 over one TCP socket, and the per-worker outbound pool.
//
// Pool invariants (spec §2.7):
//   - a pool entry is keyed by (source identity, expected destination identities, source IP,
//     destination address), so a connection is only reused for peers it was verified for;
//   - at most one connection per key is being dialled at a time; tunnels that need one wait in
//     the entry's queue and are served, in order, as soon as it is ready; when it is full (its
//     stream limit reached) the next dial starts for the rest;
//   - a connection that failed, got GOAWAY or was idle for POOL_UNUSED_RELEASE_TIMEOUT leaves the
//     pool; broken ones are skipped on checkout;
//   - entries are per worker (shared-nothing), so a key may have one connection per worker.

#include <netinet/tcp.h>

#include <algorithm>

#include "ztunnel/core/log.h"
#include "ztunnel/io/socket_options.h"
#include "ztunnel/proxy/worker.h"

namespace zt::proxy {

namespace {

// Encrypt at most this much ahead of the socket: enough to fill the TCP send buffer, little
// enough that a slow peer does not pin memory in our queue.
constexpr size_t kCiphertextHighWatermark = 512 << 10;
// HTTP/2 output framed per produce() call.
constexpr size_t kProduceChunk = 256 << 10;

const char* kNetworkPolicyHint = ", maybe a NetworkPolicy is blocking HBONE port 15008";

}  // namespace

// ---------------------------------------------------------------------------------------------
// Stream helpers for either role

hbone::ClientSession* Worker::clientSession(const End& e) {
  HboneConn* c = conn(e.conn);
  return c != nullptr && c->isClient ? c->client.get() : nullptr;
}

hbone::ServerSession* Worker::serverSession(const End& e) {
  HboneConn* c = conn(e.conn);
  return c != nullptr && !c->isClient ? c->server.get() : nullptr;
}

Status Worker::streamSend(const End& e, ByteBuffer& data) {
  if (auto* cs = clientSession(e)) {
    return cs->send(e.stream, data);
  }
  if (auto* ss = serverSession(e)) {
    return ss->send(e.stream, data);
  }
  return fail(CoreErrc::kNotFound, "HBONE connection is gone");
}

size_t Worker::streamQueued(const End& e) {
  if (auto* cs = clientSession(e)) {
    return cs->queuedBytes(e.stream);
  }
  if (auto* ss = serverSession(e)) {
    return ss->queuedBytes(e.stream);
  }
  return 0;
}

void Worker::streamCloseWrite(const End& e) {
  if (auto* cs = clientSession(e)) {
    (void)cs->closeWrite(e.stream);
  } else if (auto* ss = serverSession(e)) {
    (void)ss->closeWrite(e.stream);
  }
}

void Worker::streamReset(const End& e, uint32_t code) {
  if (auto* cs = clientSession(e)) {
    cs->reset(e.stream, code);
  } else if (auto* ss = serverSession(e)) {
    ss->reset(e.stream, code);
  }
}

void Worker::streamConsume(const End& e, size_t n) {
  if (auto* cs = clientSession(e)) {
    cs->consume(e.stream, n);
  } else if (auto* ss = serverSession(e)) {
    ss->consume(e.stream, n);
  }
}

Worker::StreamRef Worker::streamRef(HboneConn& c, hbone::StreamId id) {
  auto it = c.streams.find(id);
  if (it == c.streams.end()) {
    return {};
  }
  Tunnel* t = tunnel(it->second);
  if (t == nullptr || t->dead) {
    return {};
  }
  int side = (t->ends[1].type == End::Type::kStream && t->ends[1].stream == id) ? 1 : 0;
  return {it->second, t, side};
}

// ---------------------------------------------------------------------------------------------
// Pool

void Worker::poolAcquire(TunnelHandle th, Tunnel& t) {
  PoolEntry& entry = pool_[t.poolKey];
  for (auto it = entry.conns.begin(); it != entry.conns.end();) {
    HboneConn* c = conn(*it);
    if (c == nullptr || c->dead || c->sessionDead()) {
      it = entry.conns.erase(it);  // broken: dropped on checkout
      continue;
    }
    if (c->phase == HboneConn::Phase::kReady && c->client && c->client->canOpenTunnel()) {
      openStream(*it, *c, th, t);
      return;
    }
    ++it;
  }
  t.phase = TunnelPhase::kWaitingForPool;
  entry.waiters.push_back(th);
  if (!entry.dialing) {
    dial(t.poolKey, entry, *t.route);
  }
}

void Worker::dial(const std::string& key, PoolEntry& entry, const HboneRoute& route) {
  // Dedicated mode: the kernel picks our own address as the source, so none is bound here.
  auto creds = inputs_.credentials.current();
  if (!creds) {
    failWaiters(key, ResponseFlag::kIdentityError, "no workload certificate loaded");
    return;
  }
  auto session = tls::TlsSession::client(creds->client, route.expectedIdentities);
  if (!session) {
    failWaiters(key, ResponseFlag::kTlsFailure, session.error().message());
    return;
  }
  auto fd = openSocket(route.dial.family(), std::nullopt);
  if (!fd) {
    failWaiters(key, ResponseFlag::kConnect, fd.error().message());
    return;
  }
  ConnHandle ch = conns_.emplace(*this, true);
  HboneConn& c = *conn(ch);
  c.self = ch;
  c.poolKey = key;
  c.tls = std::move(*session);
  c.peer = route.dial;
  c.socket = newSocket(std::move(*fd));
  setOwner(c.socket, OwnerKind::kHbone, ch.slot, ch.gen);
  startConnect(c.socket, *socket(c.socket), route.dial);
  c.handshakeTimer = loop_->scheduleAfter(config_.connectTimeout + config_.handshakeTimeout,
                                          timerCookie(TimerKind::kHandshake, ch.slot, ch.gen));
  entry.dialing = true;
  entry.conns.push_back(ch);
}

void Worker::serveWaiters(const std::string& key) {
  auto it = pool_.find(key);
  if (it == pool_.end()) {
    return;
  }
  PoolEntry& entry = it->second;
  while (!entry.waiters.empty()) {
    TunnelHandle th = entry.waiters.front();
    Tunnel* t = tunnel(th);
    if (t == nullptr || t->dead) {
      entry.waiters.pop_front();
      continue;
    }
    bool served = false;
    for (ConnHandle ch : entry.conns) {
      HboneConn* c = conn(ch);
      if (c != nullptr && !c->dead && c->phase == HboneConn::Phase::kReady && c->client &&
          c->client->canOpenTunnel()) {
        entry.waiters.pop_front();
        openStream(ch, *c, th, *t);
        served = true;
        break;
      }
    }
    if (!served) {
      break;
    }
  }
  // Still waiting: every connection is full or gone; dial the next one (one at a time).
  if (!entry.waiters.empty() && !entry.dialing) {
    Tunnel* first = tunnel(entry.waiters.front());
    dial(key, entry, *first->route);
  }
  if (entry.waiters.empty() && entry.conns.empty() && !entry.dialing) {
    pool_.erase(it);
  }
}

void Worker::failWaiters(const std::string& key, ResponseFlag flag, const std::string& error) {
  auto it = pool_.find(key);
  if (it == pool_.end()) {
    return;
  }
  std::deque<TunnelHandle> waiters;
  waiters.swap(it->second.waiters);
  it->second.dialing = false;
  for (TunnelHandle th : waiters) {
    if (Tunnel* t = tunnel(th); t != nullptr && !t->dead) {
      abortTunnel(th, *t, flag, error);
    }
  }
  if (it->second.conns.empty()) {
    pool_.erase(it);
  }
}

void Worker::openStream(ConnHandle ch, HboneConn& c, TunnelHandle th, Tunnel& t) {
  auto id = c.client->openTunnel(t.request);
  if (!id) {
    abortTunnel(th, t, ResponseFlag::kConnect, id.error().message());
    return;
  }
  c.streams[*id] = th;
  if (c.idleTimer) {
    loop_->cancelTimer(c.idleTimer);
    c.idleTimer = {};
  }
  t.ends[1].type = End::Type::kStream;
  t.ends[1].conn = ch;
  t.ends[1].stream = *id;
  t.phase = TunnelPhase::kConnecting;
  t.dstIdentity = c.peerIdentity;
  // Read the client right away: its first bytes wait in the stream until the 200 arrives, which
  // saves the client a round trip on client-speaks-first protocols.
  if (t.ends[0].type == End::Type::kSocket && !t.socks) {
    wantRecv(t.ends[0].socket, true);
  }
  markDirty(ch, c);
}

void Worker::removeFromPool(ConnHandle ch, HboneConn& c) {
  if (c.poolKey.empty()) {
    return;
  }
  std::string key = std::move(c.poolKey);
  c.poolKey.clear();
  auto it = pool_.find(key);
  if (it == pool_.end()) {
    return;
  }
  auto& conns = it->second.conns;
  conns.erase(std::remove(conns.begin(), conns.end(), ch), conns.end());
  if (it->second.waiters.empty() && conns.empty() && !it->second.dialing) {
    pool_.erase(it);
  }
}

// ---------------------------------------------------------------------------------------------
// Connection I/O

void Worker::hboneConnected(ConnHandle ch, HboneConn& c, int err) {
  if (err != 0) {
    bool timedOut = err == ETIMEDOUT;
    failConn(ch, c, timedOut ? ResponseFlag::kNetworkPolicy : ResponseFlag::kConnect,
             "connect to " + c.peer.toString() + ": " + std::strerror(err) +
                 (timedOut ? kNetworkPolicyHint : ""));
    return;
  }
  Socket& s = *socket(c.socket);
  if (auto local = io::localAddress(s.fd.get())) {
    c.local = *local;
  }
  c.phase = HboneConn::Phase::kHandshaking;
  if (Status st = c.tls->start(s.out); !st) {
    failConn(ch, c, ResponseFlag::kTlsFailure, st.error().message());
    return;
  }
  wantRecv(c.socket, true);
  trySend(c.socket, s);
}

void Worker::hboneData(ConnHandle ch, HboneConn& c, std::span<const uint8_t> data) {
  Socket& s = *socket(c.socket);
  auto fed = c.tls->feed(data, c.plainIn, s.out);
  if (!fed) {
    failConn(
        ch, c,
        c.phase == HboneConn::Phase::kReady ? ResponseFlag::kConnect : ResponseFlag::kTlsFailure,
        fed.error().message());
    return;
  }
  if (fed->handshakeDone && c.phase == HboneConn::Phase::kHandshaking) {
    handshakeDone(ch, c);
    if (c.dead) {
      return;
    }
  }
  if (c.phase == HboneConn::Phase::kReady) {
    while (!c.plainIn.empty()) {
      auto chunk = c.plainIn.front();
      Status st = c.isClient ? c.client->receive(chunk) : c.server->receive(chunk);
      c.plainIn.drain(chunk.size());
      if (!st) {
        failConn(ch, c, ResponseFlag::kConnect, st.error().message());
        return;
      }
      if (c.dead) {
        return;
      }
    }
  }
  if (fed->peerClosed) {
    hboneEof(ch, c);
    return;
  }
  markDirty(ch, c);
}

void Worker::handshakeDone(ConnHandle ch, HboneConn& c) {
  if (c.handshakeTimer) {
    loop_->cancelTimer(c.handshakeTimer);
    c.handshakeTimer = {};
  }
  c.peerIdentity = c.tls->peerIdentity()->toUri();
  if (c.isClient) {
    auto session = hbone::ClientSession::create(clientH2_, c);
    if (!session) {
      failConn(ch, c, ResponseFlag::kH2HandshakeFailure, session.error().message());
      return;
    }
    c.client = std::move(*session);
  } else {
    auto session = hbone::ServerSession::create(serverH2_, c);
    if (!session) {
      failConn(ch, c, ResponseFlag::kH2HandshakeFailure, session.error().message());
      return;
    }
    c.server = std::move(*session);
  }
  c.phase = HboneConn::Phase::kReady;
  c.tickTimer =
      loop_->scheduleAfter(std::chrono::seconds(1), timerCookie(TimerKind::kTick, ch.slot, ch.gen));
  ZT_DEBUG("HBONE {} {} -> {} established, peer {}", c.isClient ? "client" : "server",
           c.local.toString(), c.peer.toString(), c.peerIdentity);
  if (c.isClient) {
    auto it = pool_.find(c.poolKey);
    if (it != pool_.end()) {
      it->second.dialing = false;
    }
    serveWaiters(c.poolKey);
  }
  markDirty(ch, c);
}

void Worker::hboneEof(ConnHandle ch, HboneConn& c) {
  if (c.sessionDead() || c.activeStreams() == 0) {
    // A peer closing an idle or finished connection is the normal end of it.
    c.dead = true;
    removeFromPool(ch, c);
    if (c.client) {
      c.client->abort();
    } else if (c.server) {
      c.server->abort();
    }
    closeSocket(c.socket, false);
    cancelTimers(c);
    deadConns_.push_back(ch);
    return;
  }
  failConn(ch, c, ResponseFlag::kConnect, "HBONE connection closed by the peer");
}

void Worker::hboneSent(ConnHandle ch, HboneConn& c) {
  markDirty(ch, c);
}

void Worker::failConn(ConnHandle ch, HboneConn& c, ResponseFlag flag, const std::string& error) {
  if (c.dead) {
    return;
  }
  c.dead = true;
  const bool wasDialing = c.isClient && c.phase != HboneConn::Phase::kReady;
  std::string key = c.poolKey;
  removeFromPool(ch, c);
  if (wasDialing) {
    ZT_WARN("HBONE connection to {} failed: {}", c.peer.toString(), error);
    failWaiters(key, flag, error);
  } else {
    ZT_DEBUG("HBONE connection {} <-> {} closed: {}", c.local.toString(), c.peer.toString(), error);
  }
  // Streams still open fail with the connection (onStreamReset/onStreamClosed come from abort()).
  if (c.client) {
    c.client->abort();
  } else if (c.server) {
    c.server->abort();
  }
  // Whatever abort() did not report (aborting a tunnel erases from c.streams: iterate a copy).
  auto remaining = std::move(c.streams);
  c.streams.clear();
  for (auto& [id, th] : remaining) {
    if (Tunnel* t = tunnel(th); t != nullptr && !t->dead) {
      abortTunnel(th, *t, flag, error);
    }
  }
  cancelTimers(c);
  if (Socket* s = socket(c.socket)) {
    if (s->failed || s->out.empty()) {
      closeSocket(c.socket, s->failed);
    } else {
      // Let the alert or GOAWAY we produced reach the peer, then close.
      s->ownerKind = OwnerKind::kNone;
      s->closeWhenFlushed = true;
      trySend(c.socket, *s);
    }
  }
  deadConns_.push_back(ch);
}

void Worker::cancelTimers(HboneConn& c) {
  for (io::TimerId* timer : {&c.handshakeTimer, &c.tickTimer, &c.idleTimer}) {
    if (*timer) {
      loop_->cancelTimer(*timer);
      *timer = {};
    }
  }
}

void Worker::markDirty(ConnHandle ch, HboneConn& c) {
  if (!c.dirty) {
    c.dirty = true;
    dirtyConns_.push_back(ch);
  }
}

void Worker::flushConn(ConnHandle ch, HboneConn& c) {
  Socket* s = socket(c.socket);
  if (s == nullptr) {
    return;
  }
  if (c.phase == HboneConn::Phase::kReady && (c.client || c.server)) {
    while (s->out.size() < kCiphertextHighWatermark && c.wantsWrite()) {
      Status st = c.isClient ? c.client->produce(c.plainOut, kProduceChunk)
                             : c.server->produce(c.plainOut, kProduceChunk);
      if (!st) {
        // The session may have produced a last GOAWAY telling the peer why: send it first.
        if (!c.plainOut.empty()) {
          (void)c.tls->write(c.plainOut, s->out);
        }
        failConn(ch, c, ResponseFlag::kConnect, st.error().message());
        return;
      }
      if (c.plainOut.empty()) {
        break;
      }
      if (Status w = c.tls->write(c.plainOut, s->out); !w) {
        failConn(ch, c, ResponseFlag::kConnect, w.error().message());
        return;
      }
    }
  }
  trySend(c.socket, *s);
  if (c.sessionDead()) {
    const Error* failure = c.isClient ? c.client->failure() : c.server->failure();
    if (failure != nullptr) {
      failConn(ch, c, ResponseFlag::kConnect, failure->message());
      return;
    }
    closeConnGracefully(ch, c);  // GOAWAY exchanged, no streams left
    return;
  }
}

void Worker::closeConnGracefully(ConnHandle ch, HboneConn& c) {
  if (c.dead) {
    return;
  }
  c.dead = true;
  removeFromPool(ch, c);
  cancelTimers(c);
  if (Socket* s = socket(c.socket)) {
    // Everything the sessions still hold (last frames, GOAWAY), then close_notify, then FIN.
    if (c.phase == HboneConn::Phase::kReady) {
      Status st = c.isClient ? c.client->produce(c.plainOut, SIZE_MAX)
                             : c.server->produce(c.plainOut, SIZE_MAX);
      (void)st;
      if (!c.plainOut.empty()) {
        (void)c.tls->write(c.plainOut, s->out);
      }
      c.tls->close(s->out);
    }
    s->ownerKind = OwnerKind::kNone;
    s->closeWhenFlushed = true;
    trySend(c.socket, *s);  // closes the socket once the queue is empty (may free it now)
  }
  deadConns_.push_back(ch);
}

// ---------------------------------------------------------------------------------------------
// Session callbacks

void Worker::onTunnelResponse(HboneConn& c, hbone::StreamId id, int status) {
  auto [th, t, side] = streamRef(c, id);
  if (t == nullptr) {
    return;
  }
  if (status == 200) {
    establish(th, *t);
    return;
  }
  c.streams.erase(id);
  t->ends[side].type = End::Type::kNone;  // the session already reset the stream
  t->socksFailure =
      status == 401 ? socks5::ReplyCode::kNotAllowed : socks5::ReplyCode::kConnectionRefused;
  abortTunnel(th, *t, ResponseFlag::kConnect,
              "HBONE CONNECT to " + t->request.authority.toString() + " was answered " +
                  std::to_string(status));
}

void Worker::onConnectRequest(HboneConn& c, hbone::StreamId id, hbone::ConnectRequest&& request) {
  auto state = inputs_.state.current();
  InboundDecision decision =
      resolveInbound(*state, config_.network, request.authority, c.local.ip(), c.peer.ip(),
                     *c.tls->peerIdentity(), config_.enableSocks5);
  TunnelHandle th = newTunnel(TunnelKind::kInboundHbone);
  Tunnel& t = *tunnel(th);
  t.state = state;
  t.request = std::move(request);
  t.src = c.peer;
  t.dst = c.local;
  t.hboneAddr = t.request.authority.toString();
  t.srcIdentity = c.peerIdentity;
  if (auto creds = inputs_.credentials.current()) {
    t.dstIdentity = creds->credentials->identity().toUri();
  }
  if (auto* reject = std::get_if<InboundReject>(&decision)) {
    if (reject->destination != nullptr) {
      t.dstWorkload = reject->destination->name;
    }
    (void)c.server->respond(id, reject->status);
    markDirty(c.self, c);
    abortTunnel(th, t, reject->flag, std::to_string(reject->status) + ": " + reject->reason);
    return;
  }
  auto& accept = std::get<InboundAccept>(decision);
  t.dstWorkload = accept.destination->name;
  t.ends[0].type = End::Type::kStream;
  t.ends[0].conn = c.self;
  t.ends[0].stream = id;
  c.streams[id] = th;
  for (const auto& line : accept.decision.dryRunLog) {
    ZT_DEBUG("authorization (dry run): {}", line);
  }
  auto upstream = connectUpstream(th, t, accept.upstream, std::optional<IpAddress>(c.peer.ip()));
  if (!upstream) {
    c.streams.erase(id);
    t.ends[0].type = End::Type::kNone;
    (void)c.server->respond(id, 503);
    markDirty(c.self, c);
    abortTunnel(th, t, ResponseFlag::kConnect, upstream.error().message());
  }
}

void Worker::onStreamData(HboneConn& c, hbone::StreamId id, std::span<const uint8_t> data) {
  auto [th, t, side] = streamRef(c, id);
  if (t == nullptr) {
    // Nobody will read these bytes: give the window back so the connection is not starved.
    if (c.client) {
      c.client->consume(id, data.size());
    } else if (c.server) {
      c.server->consume(id, data.size());
    }
    return;
  }
  deliver(th, *t, 1 - side, data);
}

void Worker::onStreamEnd(HboneConn& c, hbone::StreamId id) {
  auto [th, t, side] = streamRef(c, id);
  if (t == nullptr) {
    return;
  }
  t->ends[side].eofReceived = true;
  propagateEof(th, *t, side);
  checkFinished(th, *t);
}

void Worker::onStreamReset(HboneConn& c, hbone::StreamId id, uint32_t code) {
  auto [th, t, side] = streamRef(c, id);
  if (t == nullptr) {
    return;
  }
  c.streams.erase(id);
  t->ends[side].closed = true;
  t->ends[side].type = End::Type::kNone;
  abortTunnel(th, *t, ResponseFlag::kConnect,
              "HTTP/2 stream reset (error code " + std::to_string(code) + ")");
}

void Worker::onStreamClosed(HboneConn& c, hbone::StreamId id) {
  auto [th, t, side] = streamRef(c, id);
  c.streams.erase(id);
  if (t != nullptr) {
    t->ends[side].closed = true;
    checkFinished(th, *t);
  }
  if (c.isClient && c.streams.empty() && !c.dead && !c.idleTimer) {
    c.idleTimer = loop_->scheduleAfter(config_.poolUnusedReleaseTimeout,
                                       timerCookie(TimerKind::kIdle, c.self.slot, c.self.gen));
  }
}

void Worker::onStreamWritable(HboneConn& c, hbone::StreamId id) {
  auto [th, t, side] = streamRef(c, id);
  if (t != nullptr) {
    pauseSource(*t, 1 - side, false);
  }
}

void Worker::onGoaway(HboneConn& c) {
  // No new streams here; the ones in flight finish. The next tunnel dials a fresh connection.
  removeFromPool(c.self, c);
}

}  // namespace zt::proxy
