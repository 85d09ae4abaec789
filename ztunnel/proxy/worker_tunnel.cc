// Tunnels: moving bytes, EOFs and errors between the two ends of a proxied connection.
//
// Direction i -> 1-i is finished when end i reported EOF and that EOF reached end 1-i (FIN sent
// after the queue drained, or END_STREAM). A tunnel is finished when every socket end is finished
// both ways and every stream end is closed; then sockets close gracefully. Any error instead
// aborts: sockets are reset (RST), streams reset with CONNECT_ERROR (RFC 9113 §8.5: how a TCP
// reset crosses an HTTP/2 CONNECT tunnel).

#include <fmt/format.h>

#include "ztunnel/core/log.h"
#include "ztunnel/io/socket_options.h"
#include "ztunnel/proxy/worker.h"

namespace zt::proxy {

namespace {
constexpr uint32_t kH2ConnectError = 0xa;
}  // namespace

int Worker::sideOfSocket(const Tunnel& t, SocketHandle h) const {
  return (t.ends[1].type == End::Type::kSocket && t.ends[1].socket == h) ? 1 : 0;
}

Worker::TunnelHandle Worker::newTunnel(TunnelKind kind) {
  TunnelHandle th = tunnels_.emplace();
  Tunnel& t = *tunnels_.get(th);
  t.kind = kind;
  t.start = loop_->now();
  return th;
}

void Worker::attachSocket(TunnelHandle th, Tunnel& t, int side, SocketHandle sh) {
  t.ends[side].type = End::Type::kSocket;
  t.ends[side].socket = sh;
  setOwner(sh, OwnerKind::kTunnel, th.slot, th.gen);
}

void Worker::tunnelSocketData(TunnelHandle th, Tunnel& t, int side, std::span<const uint8_t> data) {
  if (t.phase == TunnelPhase::kSocks5) {
    socks5Data(th, t, data);
    return;
  }
  deliver(th, t, 1 - side, data);
}

void Worker::deliver(TunnelHandle th, Tunnel& t, int to, std::span<const uint8_t> data) {
  (to == 1 ? t.bytesUp : t.bytesDown) += data.size();
  End& dst = t.ends[to];
  switch (dst.type) {
    case End::Type::kSocket: {
      Socket* s = socket(dst.socket);
      if (s == nullptr) {
        return;
      }
      s->out.append(data);
      trySend(dst.socket, *s);
      if (s->out.size() > config_.plainHighWatermark) {
        pauseSource(t, 1 - to, true);
      }
      break;
    }
    case End::Type::kStream: {
      scratch_.append(data);
      Status st = streamSend(dst, scratch_);
      scratch_.clear();
      if (!st) {
        abortTunnel(th, t, ResponseFlag::kConnect, st.error().message());
        return;
      }
      if (HboneConn* c = conn(dst.conn)) {
        const auto& cfg = c->isClient ? clientH2_ : serverH2_;
        if (streamQueued(dst) > cfg.sendHighWatermark) {
          pauseSource(t, 1 - to, true);
        }
        markDirty(dst.conn, *c);
      }
      break;
    }
    case End::Type::kNone:
      // The destination is not attached yet (waiting for the pool); its reads are not armed
      // before it is, so this only happens with SOCKS5 leftovers, which wait in socksPending.
      t.socksPending.append(data);
      break;
  }
}

void Worker::pauseSource(Tunnel& t, int source, bool pause) {
  End& src = t.ends[source];
  if (src.type != End::Type::kSocket || src.paused == pause) {
    return;  // a stream source is paused by not consuming its bytes
  }
  src.paused = pause;
  wantRecv(src.socket, !pause && !src.eofReceived && t.phase == TunnelPhase::kEstablished);
}

void Worker::tunnelSocketSent(TunnelHandle th, Tunnel& t, int side, size_t n) {
  End& src = t.ends[1 - side];
  if (src.type == End::Type::kStream) {
    // The bytes reached the destination socket: now the peer may send more (flow control).
    streamConsume(src, n);
    if (HboneConn* c = conn(src.conn)) {
      markDirty(src.conn, *c);
    }
  } else if (src.type == End::Type::kSocket && src.paused) {
    Socket* s = socket(t.ends[side].socket);
    if (s != nullptr && s->out.size() <= config_.plainLowWatermark) {
      pauseSource(t, 1 - side, false);
    }
  }
  checkFinished(th, t);
}

void Worker::tunnelSocketEof(TunnelHandle th, Tunnel& t, int side) {
  t.ends[side].eofReceived = true;
  if (t.phase == TunnelPhase::kSocks5) {
    abortTunnel(th, t, ResponseFlag::kConnect, "client closed during the SOCKS5 handshake");
    return;
  }
  propagateEof(th, t, side);
  checkFinished(th, t);
}

void Worker::propagateEof(TunnelHandle th, Tunnel& t, int from) {
  (void)th;
  End& dst = t.ends[1 - from];
  if (dst.eofSent) {
    return;
  }
  switch (dst.type) {
    case End::Type::kSocket:
      if (Socket* s = socket(dst.socket)) {
        dst.eofSent = true;
        s->shutdownWanted = true;
        maybeShutdown(dst.socket, *s);
      }
      break;
    case End::Type::kStream:
      dst.eofSent = true;
      streamCloseWrite(dst);
      if (HboneConn* c = conn(dst.conn)) {
        markDirty(dst.conn, *c);
      }
      break;
    case End::Type::kNone:
      break;  // propagated when the end is attached (see establish)
  }
}

void Worker::establish(TunnelHandle th, Tunnel& t) {
  t.phase = TunnelPhase::kEstablished;
  if (t.socks) {
    // SOCKS5: the success reply goes out before any byte of the tunnel.
    if (Socket* s = socket(t.ends[0].socket)) {
      auto local = io::localAddress(s->fd.get());
      s->out.append(socks5::connectReply(socks5::ReplyCode::kSucceeded,
                                         local ? std::optional(*local) : std::nullopt));
    }
    t.socks.reset();
    if (!t.socksPending.empty()) {
      std::string early = t.socksPending.toString();
      t.socksPending.clear();
      deliver(th, t, 1, std::span(reinterpret_cast<const uint8_t*>(early.data()), early.size()));
    }
  }
  for (int side = 0; side < 2; ++side) {
    End& e = t.ends[side];
    if (e.type != End::Type::kSocket) {
      continue;
    }
    if (Socket* s = socket(e.socket)) {
      if (!e.eofReceived && !e.paused) {
        wantRecv(e.socket, true);
      }
      trySend(e.socket, *s);  // bytes that arrived while connecting
    }
  }
  // An EOF that arrived before the other end existed.
  for (int side = 0; side < 2; ++side) {
    if (t.ends[side].eofReceived) {
      propagateEof(th, t, side);
    }
  }
}

void Worker::checkFinished(TunnelHandle th, Tunnel& t) {
  if (t.dead || t.phase != TunnelPhase::kEstablished) {
    return;
  }
  for (const End& e : t.ends) {
    switch (e.type) {
      case End::Type::kSocket: {
        const Socket* s = socket(e.socket);
        if (s == nullptr) {
          break;
        }
        bool flushed = s->out.empty() && !s->sendArmed && s->shutdownDone;
        if (!e.eofReceived || !e.eofSent || !flushed) {
          return;
        }
        break;
      }
      case End::Type::kStream:
        if (!e.closed) {
          return;
        }
        break;
      case End::Type::kNone:
        break;
    }
  }
  endTunnel(th, t, /*abortive=*/false);
}

void Worker::abortTunnel(TunnelHandle th, Tunnel& t, ResponseFlag flag, std::string error) {
  if (t.dead) {
    return;
  }
  if (t.flag == ResponseFlag::kNone) {
    t.flag = flag;
  }
  if (t.error.empty()) {
    t.error = std::move(error);
  }
  if (t.socks && t.socks->stage() == socks5::ServerHandshake::Stage::kDone &&
      t.ends[0].type == End::Type::kSocket) {
    // A SOCKS5 client gets a failure reply instead of a reset.
    if (Socket* s = socket(t.ends[0].socket)) {
      socks5::ReplyCode code = t.socksFailure.value_or(flag == ResponseFlag::kNetworkPolicy
                                                           ? socks5::ReplyCode::kTtlExpired
                                                           : socks5::ReplyCode::kGeneralFailure);
      s->out.append(socks5::connectReply(code, std::nullopt));
      s->ownerKind = OwnerKind::kNone;
      s->closeWhenFlushed = true;
      trySend(t.ends[0].socket, *s);
    }
    t.ends[0].type = End::Type::kNone;
  }
  endTunnel(th, t, true);
}

void Worker::endTunnel(TunnelHandle th, Tunnel& t, bool abortive) {
  for (End& e : t.ends) {
    if (e.type == End::Type::kSocket) {
      closeSocket(e.socket, abortive);
    } else if (e.type == End::Type::kStream) {
      if (HboneConn* c = conn(e.conn)) {
        c->streams.erase(e.stream);
        if (!e.closed) {
          streamReset(e, kH2ConnectError);
          markDirty(e.conn, *c);
        }
      }
    }
    e.type = End::Type::kNone;
  }
  logTunnel(t);
  t.dead = true;
  deadTunnels_.push_back(th);
}

void Worker::logTunnel(const Tunnel& t) {
  auto& log = zt::log::access();
  const bool failed = !t.error.empty();
  const auto level = failed ? spdlog::level::err : spdlog::level::info;
  if (!log.should_log(level)) {
    return;
  }
  auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(loop_->now() - t.start).count();
  // Bytes from the application's point of view on this side (ztunnel's access log).
  const bool outbound = isOutbound(t.kind);
  uint64_t sent = outbound ? t.bytesUp : t.bytesDown;
  uint64_t recv = outbound ? t.bytesDown : t.bytesUp;
  fmt::memory_buffer line;
  auto out = std::back_inserter(line);
  fmt::format_to(out, "{} src.addr={}", failed ? "connection failed" : "connection complete",
                 t.src.toString());
  if (!t.srcIdentity.empty()) {
    fmt::format_to(out, " src.identity=\"{}\"", t.srcIdentity);
  }
  fmt::format_to(out, " dst.addr={}", t.dst.toString());
  if (!t.hboneAddr.empty()) {
    fmt::format_to(out, " dst.hbone_addr={}", t.hboneAddr);
  }
  if (!t.dstService.empty()) {
    fmt::format_to(out, " dst.service={}", t.dstService);
  }
  if (!t.dstWorkload.empty()) {
    fmt::format_to(out, " dst.workload={}", t.dstWorkload);
  }
  if (!t.dstIdentity.empty()) {
    fmt::format_to(out, " dst.identity=\"{}\"", t.dstIdentity);
  }
  fmt::format_to(out, " direction=\"{}\" bytes_sent={} bytes_recv={} duration=\"{}ms\"",
                 outbound ? "outbound" : "inbound", sent, recv, ms);
  if (failed) {
    fmt::format_to(out, " response_flags={} error=\"{}\"", toString(t.flag), t.error);
  }
  log.log(level, "{}", std::string_view(line.data(), line.size()));
}

}  // namespace zt::proxy
