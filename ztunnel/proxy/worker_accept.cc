// Accepted connections: outbound capture (15001) and SOCKS5 (15080), inbound HBONE (15008) and
// inbound plaintext (15006); routing them, and connecting upstream.

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

#include <algorithm>

#include "ztunnel/core/log.h"
#include "ztunnel/io/errors.h"
#include "ztunnel/io/socket_options.h"
#include "ztunnel/proxy/worker.h"

namespace zt::proxy {

namespace {

// TCP_NODELAY and keepalive on sockets we accepted (sockets we create get them from
// io::makeTcpSocket).
void tuneAccepted(int fd, const io::KeepaliveOptions& keepalive) {
  int one = 1;
  ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
  if (keepalive.enabled) {
    int idle = static_cast<int>(keepalive.time.count());
    int interval = static_cast<int>(keepalive.interval.count());
    int count = keepalive.retries;
    ::setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &one, sizeof(one));
    ::setsockopt(fd, IPPROTO_TCP, TCP_KEEPIDLE, &idle, sizeof(idle));
    ::setsockopt(fd, IPPROTO_TCP, TCP_KEEPINTVL, &interval, sizeof(interval));
    ::setsockopt(fd, IPPROTO_TCP, TCP_KEEPCNT, &count, sizeof(count));
  }
}

// The pool key (spec §2.7 WorkloadKey): who we are, whom we accept, from where, to where.
std::string poolKeyFor(std::string_view sourceIdentity, const HboneRoute& route,
                       const IpAddress& sourceIp) {
  std::vector<std::string> ids;
  ids.reserve(route.expectedIdentities.size());
  for (const auto& id : route.expectedIdentities) {
    ids.push_back(id.toUri());
  }
  std::sort(ids.begin(), ids.end());
  std::string key(sourceIdentity);
  key += '|';
  for (const auto& id : ids) {
    key += id;
    key += ',';
  }
  key += '|';
  key += sourceIp.toString();
  key += '|';
  key += route.dial.toString();
  return key;
}

}  // namespace

const state::Workload* Worker::localWorkload(const state::ProxyState& state) const {
  if (config_.workloadName.empty()) {
    return nullptr;
  }
  return state.findLocalWorkload(config_.workloadNamespace, config_.workloadName,
                                 config_.workloadServiceAccount);
}

Worker::TunnelHandle Worker::adoptClient(UniqueFd fd, const SocketAddress& peer, TunnelKind kind) {
  tuneAccepted(fd.get(), config_.keepalive);
  SocketHandle sh = newSocket(std::move(fd));
  socket(sh)->connected = true;
  TunnelHandle th = newTunnel(kind);
  Tunnel& t = *tunnel(th);
  t.src = peer;
  attachSocket(th, t, 0, sh);
  return th;
}

void Worker::acceptOutbound(UniqueFd fd, bool socks5) {
  auto peer = io::peerAddress(fd.get());
  if (!peer) {
    return;  // already gone
  }
  std::optional<SocketAddress> target;
  if (!socks5) {
    auto dst = io::originalDestination(fd.get());
    if (!dst) {
      ZT_WARN("outbound connection from {}: no original destination: {}", peer->toString(),
              dst.error().message());
      return;
    }
    target = *dst;
  }
  TunnelHandle th = adoptClient(std::move(fd), *peer, TunnelKind::kOutboundTcp);
  Tunnel& t = *tunnel(th);
  SocketHandle sh = t.ends[0].socket;
  if (socks5) {
    t.phase = TunnelPhase::kSocks5;
    t.socks = std::make_unique<socks5::ServerHandshake>();
    wantRecv(sh, true);
    return;
  }
  routeOutboundTunnel(th, t, *target);
}

void Worker::routeOutboundTunnel(TunnelHandle th, Tunnel& t, const SocketAddress& target) {
  t.dst = target;
  t.state = inputs_.state.current();
  const state::Workload* source = localWorkload(*t.state);
  OutboundRoute route =
      routeOutbound(*t.state, config_.network, source, target, config_.enableSocks5, rng_);

  if (auto* reject = std::get_if<RejectRoute>(&route)) {
    t.socksFailure = socks5::ReplyCode::kNotAllowed;
    abortTunnel(th, t, reject->flag, reject->reason);
    return;
  }
  if (auto* tcp = std::get_if<TcpRoute>(&route)) {
    t.kind = TunnelKind::kOutboundTcp;
    t.dst = tcp->dial;
    if (tcp->destination != nullptr) {
      t.dstWorkload = tcp->destination->name;
    }
    if (tcp->service != nullptr) {
      t.dstService = tcp->service->hostname;
    }
    if (auto sh = connectUpstream(th, t, tcp->dial, std::nullopt); !sh) {
      abortTunnel(th, t, ResponseFlag::kConnect, sh.error().message());
    }
    return;
  }
  auto& hbone = std::get<HboneRoute>(route);
  auto creds = inputs_.credentials.current();
  if (!creds) {
    abortTunnel(th, t, ResponseFlag::kIdentityError, "no workload certificate loaded");
    return;
  }
  t.kind = TunnelKind::kOutboundHbone;
  t.srcIdentity = creds->credentials->identity().toUri();
  t.dst = hbone.dial;
  t.hboneAddr = hbone.authority.toString();
  if (hbone.destination != nullptr) {
    t.dstWorkload = hbone.destination->name;
  }
  if (hbone.service != nullptr) {
    t.dstService = hbone.service->hostname;
  }
  t.request = makeConnectRequest(hbone, source, t.src);
  t.poolKey = poolKeyFor(t.srcIdentity, hbone, t.src.ip());
  t.route = std::move(hbone);
  poolAcquire(th, t);
}

void Worker::socks5Data(TunnelHandle th, Tunnel& t, std::span<const uint8_t> data) {
  SocketHandle sh = t.ends[0].socket;
  t.socksPending.append(data);
  std::string pending = t.socksPending.toString();  // a handshake is a few dozen bytes
  auto step =
      t.socks->feed(std::span(reinterpret_cast<const uint8_t*>(pending.data()), pending.size()));
  Socket* s = socket(sh);
  if (!step) {
    std::string reply = socks5::ServerHandshake::errorReply(step.error());
    if (s != nullptr && !reply.empty()) {
      s->out.append(reply);
      trySend(sh, *s);
    }
    t.socks.reset();  // the reply above is the answer; no second one from abortTunnel
    abortTunnel(th, t, ResponseFlag::kConnect, "SOCKS5: " + step.error().message());
    return;
  }
  t.socksPending.drain(step->consumed);
  if (!step->reply.empty() && s != nullptr) {
    s->out.append(step->reply);
    trySend(sh, *s);
  }
  if (!step->target) {
    return;  // need more bytes
  }
  // Handshake complete; bytes after the request wait in socksPending for the tunnel.
  wantRecv(sh, false);
  t.phase = TunnelPhase::kConnecting;
  if (auto* addr = std::get_if<SocketAddress>(&*step->target)) {
    routeOutboundTunnel(th, t, *addr);
    return;
  }
  // A host name: the mesh knows services by hostname; anything else needs DNS, which SOCKS5
  // here does not do.
  const auto& domain = std::get<socks5::DomainTarget>(*step->target);
  auto state = inputs_.state.current();
  const state::Service* service = state->serviceByHostname(domain.host);
  const state::ServiceVip* vip = nullptr;
  if (service != nullptr) {
    for (const auto& v : service->vips) {
      if (v.network == config_.network) {
        vip = &v;
        break;
      }
    }
  }
  if (vip == nullptr) {
    t.socksFailure = socks5::ReplyCode::kHostUnreachable;
    abortTunnel(th, t, ResponseFlag::kConnect,
                "SOCKS5: cannot resolve " + domain.host + " (only mesh service hostnames)");
    return;
  }
  routeOutboundTunnel(th, t, SocketAddress(vip->address, domain.port));
}

Result<UniqueFd> Worker::openSocket(int family, std::optional<IpAddress> spoofSource) {
  io::SocketOptions options;
  options.mark = markUsable_ && config_.packetMark != 0
                     ? std::optional<uint32_t>(config_.packetMark)
                     : std::nullopt;
  options.keepalive = config_.keepalive;
  options.userTimeout = config_.userTimeout;
  if (spoofSource && origSrcUsable_) {
    options.sourceIp = spoofSource;
  }
  for (;;) {
    auto fd = io::makeTcpSocket(family, options);
    if (fd || !fd.error().is(io::IoErrc::kPermissionDenied)) {
      return fd;
    }
    // Without CAP_NET_ADMIN: give up what needs it, once, and say so.
    if (options.sourceIp && config_.origSrc == OrigSrcMode::kAuto) {
      ZT_WARN("worker {}: source IP preservation disabled (apps see ztunnel's address): {}", index_,
              fd.error().message());
      origSrcUsable_ = false;
      options.sourceIp.reset();
    } else if (options.mark && !options.sourceIp) {
      ZT_WARN("worker {}: sockets carry no SO_MARK (capture rules would loop them): {}", index_,
              fd.error().message());
      markUsable_ = false;
      options.mark.reset();
    } else {
      return fd;
    }
  }
}

Result<Worker::SocketHandle> Worker::connectUpstream(TunnelHandle th, Tunnel& t,
                                                     const SocketAddress& to,
                                                     std::optional<IpAddress> spoofSource) {
  if (spoofSource && spoofSource->family() != to.ip().family()) {
    spoofSource.reset();
  }
  auto fd = openSocket(to.family(), spoofSource);
  if (!fd) {
    return fail(std::move(fd).error());
  }
  SocketHandle sh = newSocket(std::move(*fd));
  attachSocket(th, t, 1, sh);
  t.phase = TunnelPhase::kConnecting;
  startConnect(sh, *socket(sh), to);
  return sh;
}

void Worker::tunnelSocketConnected(TunnelHandle th, Tunnel& t, int side, int err) {
  (void)side;
  End& client = t.ends[0];
  if (err != 0) {
    t.socksFailure = socks5::replyForErrno(err);
    std::string error = "connect to " + t.dst.toString() + ": " + std::strerror(err);
    if (t.kind == TunnelKind::kInboundHbone) {
      error =
          "upstream " +
          (client.type == End::Type::kStream ? t.request.authority.toString() : t.dst.toString()) +
          ": " + std::strerror(err);
      if (auto* server = serverSession(client)) {
        (void)server->respond(client.stream, 503);
        if (HboneConn* c = conn(client.conn)) {
          c->streams.erase(client.stream);
          markDirty(client.conn, *c);
        }
        client.type = End::Type::kNone;
      }
    }
    abortTunnel(th, t, ResponseFlag::kConnect, std::move(error));
    return;
  }
  if (t.kind == TunnelKind::kInboundHbone) {
    if (auto* server = serverSession(client)) {
      if (Status st = server->respond(client.stream, 200); !st) {
        abortTunnel(th, t, ResponseFlag::kConnect, st.error().message());
        return;
      }
      if (HboneConn* c = conn(client.conn)) {
        markDirty(client.conn, *c);
      }
    }
  }
  establish(th, t);
}

void Worker::acceptInboundPlaintext(UniqueFd fd) {
  auto peer = io::peerAddress(fd.get());
  auto dst = io::originalDestination(fd.get());
  if (!peer || !dst) {
    return;
  }
  TunnelHandle th = adoptClient(std::move(fd), *peer, TunnelKind::kInboundPlaintext);
  Tunnel& t = *tunnel(th);
  t.dst = *dst;
  t.state = inputs_.state.current();
  InboundDecision decision =
      resolveInboundPlaintext(*t.state, config_.network, *dst, peer->ip(), config_.enableSocks5);
  if (auto* reject = std::get_if<InboundReject>(&decision)) {
    abortTunnel(th, t, reject->flag, reject->reason);
    return;
  }
  auto& accept = std::get<InboundAccept>(decision);
  t.dstWorkload = accept.destination->name;
  if (auto up = connectUpstream(th, t, accept.upstream, peer->ip()); !up) {
    abortTunnel(th, t, ResponseFlag::kConnect, up.error().message());
  }
}

void Worker::acceptInboundHbone(UniqueFd fd) {
  auto creds = inputs_.credentials.current();
  if (!creds) {
    ZT_WARN("inbound HBONE connection refused: no workload certificate loaded");
    return;
  }
  auto local = io::localAddress(fd.get());
  auto peer = io::peerAddress(fd.get());
  if (!local || !peer) {
    return;
  }
  auto session = tls::TlsSession::server(creds->server);
  if (!session) {
    ZT_WARN("inbound HBONE connection from {} refused: {}", peer->toString(),
            session.error().message());
    return;
  }
  tuneAccepted(fd.get(), config_.keepalive);
  ConnHandle ch = conns_.emplace(*this, false);
  HboneConn& c = *conn(ch);
  c.self = ch;
  c.tls = std::move(*session);
  c.local = *local;
  c.peer = *peer;
  c.phase = HboneConn::Phase::kHandshaking;
  c.socket = newSocket(std::move(fd));
  socket(c.socket)->connected = true;
  setOwner(c.socket, OwnerKind::kHbone, ch.slot, ch.gen);
  // Bounds how long a silent or dripping client can hold a connection before the handshake.
  c.handshakeTimer = loop_->scheduleAfter(config_.handshakeTimeout,
                                          timerCookie(TimerKind::kHandshake, ch.slot, ch.gen));
  wantRecv(c.socket, true);
}

}  // namespace zt::proxy
