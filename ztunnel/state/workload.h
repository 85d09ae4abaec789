#pragma once

// Workload: a plain C++ value mirroring istio.workload.Workload (workload.proto, see
// spec §3.3) with the fields ztunnel uses. No protobuf types; xds/ converts into these.
//
// Defaults follow the proto's "empty means" rules (service account "default", trust domain
// "cluster.local", cluster id "Kubernetes", capacity 1). ProxyState::Builder normalises empty
// strings to those defaults, so converters may leave them empty.
//
// Thread-safety: plain values; immutable once inside a published ProxyState.

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "ztunnel/core/sockaddr.h"

namespace zt::state {

inline constexpr std::string_view kDefaultServiceAccount = "default";
inline constexpr std::string_view kDefaultTrustDomain = "cluster.local";
inline constexpr std::string_view kDefaultClusterId = "Kubernetes";
inline constexpr uint16_t kDefaultHboneMtlsPort = 15008;

// TunnelProtocol (LEGACY_ISTIO_MTLS is rejected by conversion, so it has no value here).
// kNone = plain TCP to the workload; kHbone = HBONE to <ip>:15008.
enum class TunnelProtocol : uint8_t { kNone, kHbone };
enum class NetworkMode : uint8_t { kStandard, kHostNetwork };
enum class HealthStatus : uint8_t { kHealthy, kUnhealthy };
enum class WorkloadType : uint8_t { kDeployment, kCronJob, kPod, kJob };
enum class AppTunnelProtocol : uint8_t { kNone, kProxy };

std::string_view toString(TunnelProtocol p);
std::string_view toString(NetworkMode m);
std::string_view toString(HealthStatus s);
std::string_view toString(WorkloadType t);
std::string_view toString(AppTunnelProtocol p);

// SPIFFE identity pieces of a workload: spiffe://<trustDomain>/ns/<namespace>/sa/<serviceAccount>.
struct Identity {
  std::string trustDomain;
  std::string namespace_;
  std::string serviceAccount;

  // "spiffe://td/ns/<ns>/sa/<sa>".
  std::string toUri() const;
  // The same without "spiffe://" ("td/ns/<ns>/sa/<sa>"): what RBAC principals compare against.
  std::string toPrincipal() const;
  // Parses "spiffe://td/ns/<ns>/sa/<sa>" (exactly 5 path segments, literal "ns" and "sa",
  // none empty); nullopt otherwise.
  static std::optional<Identity> parseUri(std::string_view uri);

  friend bool operator==(const Identity&, const Identity&) = default;
};

struct Locality {
  std::string region;
  std::string zone;
  std::string subzone;
  friend bool operator==(const Locality&, const Locality&) = default;
};

// NetworkAddress: an IP on a named network ("" = the default network).
struct NetworkAddress {
  std::string network;
  IpAddress address;
  friend bool operator==(const NetworkAddress&, const NetworkAddress&) = default;
};

// "namespace/hostname", the key of a Service.
struct NamespacedHostname {
  std::string namespace_;
  std::string hostname;
  std::string key() const { return namespace_ + "/" + hostname; }
  friend bool operator==(const NamespacedHostname&, const NamespacedHostname&) = default;
};

// GatewayAddress: where a waypoint or network gateway is reached: an address (usually a
// Service VIP or a workload IP) or a service by namespace/hostname, plus the HBONE port.
struct GatewayAddress {
  std::variant<NetworkAddress, NamespacedHostname> destination;
  uint16_t hboneMtlsPort = kDefaultHboneMtlsPort;

  const NetworkAddress* address() const { return std::get_if<NetworkAddress>(&destination); }
  const NamespacedHostname* hostname() const {
    return std::get_if<NamespacedHostname>(&destination);
  }
  friend bool operator==(const GatewayAddress&, const GatewayAddress&) = default;
};

// ApplicationTunnel: the workload wants inbound traffic with a PROXY v2 header, optionally on
// another port (§2.9). port 0 = unset (keep the target port).
struct ApplicationTunnel {
  AppTunnelProtocol protocol = AppTunnelProtocol::kNone;
  uint16_t port = 0;
  friend bool operator==(const ApplicationTunnel&, const ApplicationTunnel&) = default;
};

// service port -> target port. A target port of 0 means "named port, resolve per endpoint".
using PortMap = std::map<uint16_t, uint16_t>;

struct Workload {
  std::string uid;  // e.g. "cluster1//v1/Pod/ns/name"; the primary key
  std::string name;
  std::string namespace_;
  std::string serviceAccount{kDefaultServiceAccount};
  std::string trustDomain{kDefaultTrustDomain};
  std::vector<IpAddress> workloadIps;
  std::string hostname;  // DNS-resolved workloads (no IPs)
  std::string network;
  TunnelProtocol protocol = TunnelProtocol::kNone;
  NetworkMode networkMode = NetworkMode::kStandard;
  std::string node;
  std::string canonicalName;
  std::string canonicalRevision;
  WorkloadType workloadType = WorkloadType::kDeployment;
  std::string workloadName;
  bool nativeTunnel = false;
  std::optional<ApplicationTunnel> applicationTunnel;
  std::vector<std::string> authorizationPolicies;  // selector policy keys "ns/name"
  HealthStatus status = HealthStatus::kHealthy;
  std::string clusterId{kDefaultClusterId};
  Locality locality;
  std::optional<GatewayAddress> waypoint;
  std::optional<GatewayAddress> networkGateway;
  uint32_t capacity = 1;  // load-balancing weight
  // "namespace/hostname" -> ports this workload serves for that service.
  std::map<std::string, PortMap, std::less<>> services;

  Identity identity() const { return Identity{trustDomain, namespace_, serviceAccount}; }
  bool hasIp(const IpAddress& ip) const;
  bool isHealthy() const { return status == HealthStatus::kHealthy; }

  friend bool operator==(const Workload&, const Workload&) = default;
};

}  // namespace zt::state
