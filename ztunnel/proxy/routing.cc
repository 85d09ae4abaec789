#include "ztunnel/proxy/routing.h"

#include <algorithm>

#include "hbone/headers.h"

namespace zt::proxy {

namespace {

void addIdentity(std::vector<tls::Identity>& out, tls::Identity id) {
  if (std::find(out.begin(), out.end(), id) == out.end()) {
    out.push_back(std::move(id));
  }
}

// Expected identities for a workload reached through `service`: the service's SANs (parsed as
// SPIFFE; invalid ones ignored) and the workload's own identity (§2.2).
std::vector<tls::Identity> expectedFor(const state::Workload& workload,
                                       const state::Service* service) {
  std::vector<tls::Identity> out;
  if (service != nullptr) {
    for (const auto& san : service->subjectAltNames) {
      if (auto id = tls::Identity::parse(san)) {
        addIdentity(out, std::move(*id));
      }
    }
  }
  addIdentity(out, toTlsIdentity(workload.identity()));
  return out;
}

OutboundRoute toWorkload(const state::Workload& workload, const state::Service* service,
                         const SocketAddress& target) {
  if (workload.protocol == state::TunnelProtocol::kHbone) {
    HboneRoute r;
    r.dial = SocketAddress(target.ip(), state::kDefaultHboneMtlsPort);
    r.authority = hbone::Authority::ofAddress(target);
    r.expectedIdentities = expectedFor(workload, service);
    r.destination = &workload;
    r.service = service;
    return r;
  }
  return TcpRoute{target, &workload, service};
}

// HBONE to a waypoint: :authority stays the original destination, the peer must be the waypoint.
OutboundRoute toWaypoint(const state::GatewayTarget& gw, const state::Service* addressedService,
                         const SocketAddress& originalDst) {
  HboneRoute r;
  r.dial = gw.address;
  r.authority = hbone::Authority::ofAddress(originalDst);
  r.expectedIdentities = expectedFor(*gw.workload, gw.service);
  r.destination = gw.workload;
  r.service = addressedService;
  return r;
}

RejectRoute unsupported(std::string what) {
  return RejectRoute{ResponseFlag::kConnect, std::move(what) + " is not supported yet"};
}

// Whether the connection comes from the waypoint itself (spec §1.8 step 5): then it goes on to
// the destination instead of back to a waypoint. A waypoint reached through a service has several
// replicas, and resolveGateway picked one at random, so compare against every endpoint.
bool isWaypointOf(const state::ProxyState& state, const state::Workload* source,
                  const state::GatewayTarget& gw) {
  if (source == nullptr) {
    return false;
  }
  if (gw.service != nullptr) {
    for (const auto& endpoint : state.endpointsOf(*gw.service)) {
      if (endpoint.workload == source) {
        return true;
      }
    }
    return false;
  }
  return source == gw.workload;
}

}  // namespace

bool isIllegalPort(uint16_t port, bool socks5) {
  return port == kOutboundPort || port == kInboundPlaintextPort || port == kInboundHbonePort ||
         (socks5 && port == kSocks5Port);
}

tls::Identity toTlsIdentity(const state::Identity& id) {
  return tls::Identity::make(id.trustDomain, id.namespace_, id.serviceAccount);
}

state::Identity toStateIdentity(const tls::Identity& id) {
  return state::Identity{id.trustDomain, id.ns, id.serviceAccount};
}

OutboundRoute routeOutbound(const state::ProxyState& state, std::string_view network,
                            const state::Workload* source, const SocketAddress& originalDst,
                            bool socks5Enabled, state::RandomSource& rng) {
  const IpAddress& ip = originalDst.ip();
  if (ip.isLoopback() && isIllegalPort(originalDst.port(), socks5Enabled)) {
    return RejectRoute{ResponseFlag::kConnect,
                       "refusing to proxy to " + originalDst.toString() + ": it would loop"};
  }

  if (const state::Workload* workload = state.workloadByAddress(network, ip)) {
    // Addressed to a workload directly: its waypoint first, unless we are that waypoint.
    if (workload->waypoint) {
      auto gw = state.resolveGateway(*workload->waypoint, source, ip, rng);
      if (!gw) {
        return RejectRoute{ResponseFlag::kConnect, gw.error().message()};
      }
      if (!isWaypointOf(state, source, *gw)) {
        return toWaypoint(*gw, nullptr, originalDst);
      }
    }
    return toWorkload(*workload, nullptr, originalDst);
  }

  std::string_view clientNs = source != nullptr ? std::string_view(source->namespace_) : "";
  if (const state::Service* service = state.serviceByVip(network, ip, clientNs)) {
    if (const state::GatewayAddress* waypoint = state::ProxyState::pickWaypoint(*service, rng)) {
      auto gw = state.resolveGateway(*waypoint, source, ip, rng);
      if (!gw) {
        return RejectRoute{ResponseFlag::kConnect, gw.error().message()};
      }
      if (!isWaypointOf(state, source, *gw)) {
        return toWaypoint(*gw, service, originalDst);
      }
    }
    state::EndpointQuery query{originalDst.port(), source, ip, false};
    auto upstream = state.pickEndpoint(*service, query, rng);
    if (!upstream) {
      return RejectRoute{ResponseFlag::kConnect,
                         service->key() + ": " + upstream.error().message()};
    }
    switch (upstream->kind) {
      case state::Upstream::Kind::kWorkloadIp:
        return toWorkload(*upstream->workload, service, upstream->address);
      case state::Upstream::Kind::kPassthrough:
        return TcpRoute{originalDst, nullptr, service};
      case state::Upstream::Kind::kHostname:
        return unsupported("service endpoint " + upstream->workload->uid +
                           " with a hostname (DNS-resolved workload)");
      case state::Upstream::Kind::kNetworkGateway:
        return unsupported("service endpoint " + upstream->workload->uid +
                           " on another network (double HBONE)");
    }
  }

  // Unknown destination: plain passthrough, no spoofing (§1.8 step 3).
  return TcpRoute{originalDst, nullptr, nullptr};
}

hbone::ConnectRequest makeConnectRequest(const HboneRoute& route, const state::Workload* source,
                                         const SocketAddress& client) {
  hbone::ConnectRequest req;
  req.authority = route.authority;
  if (source != nullptr) {
    hbone::Baggage b;
    b.clusterId = source->clusterId;
    b.namespaceName = source->namespace_;
    b.workloadType = std::string(state::toString(source->workloadType));
    b.workloadName = source->workloadName;
    b.serviceName = source->canonicalName;
    b.serviceVersion = source->canonicalRevision;
    b.region = source->locality.region;
    b.zone = source->locality.zone;
    req.baggage = hbone::encodeBaggage(b);
  }
  req.forwarded = hbone::buildForwarded(
      client, route.service != nullptr ? std::string_view(route.service->hostname) : "");
  req.traceparent = hbone::generateTraceparent();
  return req;
}

namespace {

// Shared by 15008 and 15006 once the destination IP and port are known.
InboundDecision authorize(const state::ProxyState& state, const state::Workload& destination,
                          const SocketAddress& upstream, const IpAddress& peer,
                          std::optional<state::Identity> peerIdentity, bool socks5Enabled) {
  if (upstream.port() == 0 || isIllegalPort(upstream.port(), socks5Enabled)) {
    return InboundReject{503, ResponseFlag::kConnect,
                         "refusing to connect to port " + std::to_string(upstream.port()),
                         &destination};
  }
  rbac::ConnectionInfo info{std::move(peerIdentity), peer, upstream.ip(), upstream.port()};
  rbac::Decision decision = rbac::evaluate(state, destination, info);
  if (!decision.allowed) {
    return InboundReject{401, ResponseFlag::kDeny, decision.reasonText(), &destination};
  }
  return InboundAccept{&destination, upstream, std::move(decision)};
}

}  // namespace

InboundDecision resolveInbound(const state::ProxyState& state, std::string_view network,
                               const hbone::Authority& authority, const IpAddress& arrival,
                               const IpAddress& peer, const tls::Identity& peerIdentity,
                               bool socks5Enabled) {
  const state::Workload* destination = state.workloadByAddress(network, arrival);
  if (destination == nullptr) {
    return InboundReject{503, ResponseFlag::kConnect,
                         "unknown destination workload " + arrival.toString(), nullptr};
  }
  SocketAddress upstream;
  if (authority.isAddress()) {
    if (authority.address()->ip() != arrival) {
      return InboundReject{
          400, ResponseFlag::kConnect,
          "ip mismatch: CONNECT to " + authority.toString() + " arrived on " + arrival.toString(),
          destination};
    }
    upstream = *authority.address();
  } else {
    // host:port: the service of that hostname, and this workload's port for it (§2.4 step 6).
    const state::Service* service = state.serviceByHostname(authority.host(), peerIdentity.ns);
    if (service == nullptr) {
      return InboundReject{503, ResponseFlag::kConnect,
                           "unknown service hostname " + authority.host(), destination};
    }
    uint16_t port = 0;
    auto own = destination->services.find(service->key());
    if (own != destination->services.end()) {
      if (auto p = own->second.find(authority.port()); p != own->second.end()) {
        port = p->second;
      }
    }
    if (port == 0) {
      if (auto p = service->ports.find(authority.port()); p != service->ports.end()) {
        port = p->second;
      }
    }
    if (port == 0) {
      return InboundReject{503, ResponseFlag::kConnect,
                           "no target port for " + authority.toString(), destination};
    }
    upstream = SocketAddress(arrival, port);
  }
  return authorize(state, *destination, upstream, peer, toStateIdentity(peerIdentity),
                   socks5Enabled);
}

InboundDecision resolveInboundPlaintext(const state::ProxyState& state, std::string_view network,
                                        const SocketAddress& originalDst, const IpAddress& peer,
                                        bool socks5Enabled) {
  const state::Workload* destination = state.workloadByAddress(network, originalDst.ip());
  if (destination == nullptr) {
    return InboundReject{503, ResponseFlag::kConnect,
                         "unknown destination workload " + originalDst.ip().toString(), nullptr};
  }
  return authorize(state, *destination, originalDst, peer, std::nullopt, socks5Enabled);
}

}  // namespace zt::proxy
