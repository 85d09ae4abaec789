#pragma once

// Where a connection goes: pure decisions over an immutable ProxyState, no I/O.
//
// Outbound (15001, SOCKS5): spec §1.8 — workload IP first, then service VIP (waypoint, else load
// balancing), else plain passthrough to the original destination; HBONE when the chosen workload
// speaks it. Inbound (15008): spec §2.4 steps 4-7 — destination workload, IP-mismatch check,
// upstream port, authorization.
//
// Thread: any; the returned pointers point into the ProxyState passed in, so keep its
// shared_ptr while using them.

#include <optional>
#include <string>
#include <variant>
#include <vector>

#include "hbone/connect_request.h"
#include "ztunnel/core/result.h"
#include "ztunnel/core/sockaddr.h"
#include "ztunnel/proxy/proxy_config.h"
#include "ztunnel/proxy/response_flags.h"
#include "ztunnel/rbac/authorization.h"
#include "ztunnel/state/proxy_state.h"
#include "ztunnel/tls/spiffe.h"

namespace zt::proxy {

// Carry the connection in an HBONE tunnel.
struct HboneRoute {
  SocketAddress dial;                             // peer <ip>:15008 (or the waypoint's HBONE port)
  hbone::Authority authority;                     // CONNECT :authority
  std::vector<tls::Identity> expectedIdentities;  // the peer must present one of these
  const state::Workload* destination = nullptr;   // the workload (or waypoint) dialled
  const state::Service* service = nullptr;        // when addressed to a service
};

// Plain TCP to `dial` (workload without HBONE, LB PASSTHROUGH, or an unknown destination).
struct TcpRoute {
  SocketAddress dial;
  const state::Workload* destination = nullptr;  // null for unknown destinations
  const state::Service* service = nullptr;
};

// Refuse the connection.
struct RejectRoute {
  ResponseFlag flag = ResponseFlag::kConnect;
  std::string reason;
};

using OutboundRoute = std::variant<HboneRoute, TcpRoute, RejectRoute>;

// Ports that would loop back into ztunnel. `socks5` adds 15080.
bool isIllegalPort(uint16_t port, bool socks5);

// Decides the route for a connection from `source` (may be null: unknown local workload) to
// `originalDst`. `network` is this node's network.
OutboundRoute routeOutbound(const state::ProxyState& state, std::string_view network,
                            const state::Workload* source, const SocketAddress& originalDst,
                            bool socks5Enabled, state::RandomSource& rng);

// Converts a state identity (td/ns/sa) to the TLS layer's SPIFFE value.
tls::Identity toTlsIdentity(const state::Identity& id);
state::Identity toStateIdentity(const tls::Identity& id);

// The CONNECT request headers for an outbound tunnel: baggage of the source workload,
// forwarded for= the client (and host= the service), a fresh traceparent.
hbone::ConnectRequest makeConnectRequest(const HboneRoute& route, const state::Workload* source,
                                         const SocketAddress& client);

// Inbound 15008: the answer to a CONNECT before any upstream socket is opened.
struct InboundAccept {
  const state::Workload* destination = nullptr;
  SocketAddress upstream;  // where to connect (the arrival IP and the target port)
  rbac::Decision decision;
};
struct InboundReject {
  int status = 503;  // 400 / 401 / 503
  ResponseFlag flag = ResponseFlag::kConnect;
  std::string reason;
  const state::Workload* destination = nullptr;  // when known (for the access log)
};
using InboundDecision = std::variant<InboundAccept, InboundReject>;

// `arrival` is the local address the HBONE TCP connection arrived on, `peer` its remote address,
// `peerIdentity` the verified client identity.
InboundDecision resolveInbound(const state::ProxyState& state, std::string_view network,
                               const hbone::Authority& authority, const IpAddress& arrival,
                               const IpAddress& peer, const tls::Identity& peerIdentity,
                               bool socks5Enabled);

// Inbound 15006 (plaintext, no identity): same checks for the original destination.
InboundDecision resolveInboundPlaintext(const state::ProxyState& state, std::string_view network,
                                        const SocketAddress& originalDst, const IpAddress& peer,
                                        bool socks5Enabled);

}  // namespace zt::proxy
