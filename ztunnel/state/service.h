#pragma once

// Service: a plain C++ value mirroring istio.workload.Service (workload.proto, spec §3.3).
// Endpoints are not stored here: a workload names the services it backs in Workload::services,
// and ProxyState indexes that relation.
//
// Thread-safety: plain values; immutable once inside a published ProxyState.

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "ztunnel/core/sockaddr.h"
#include "ztunnel/state/workload.h"

namespace zt::state {

// A service VIP on a network. With `prefixLength` set (and shorter than the full address) it is
// a CIDR VIP that matches every address inside it.
struct ServiceVip {
  std::string network;
  IpAddress address;
  std::optional<uint8_t> prefixLength;

  // True when this VIP covers a range rather than one address.
  bool isCidr() const {
    return prefixLength.has_value() && *prefixLength < (address.isV4() ? 32 : 128);
  }
  // The VIP as a prefix (full length when not a CIDR). Requires a valid prefix length.
  Cidr cidr() const;
  // "network/ip" or "network/ip/len".
  std::string toString() const;
  friend bool operator==(const ServiceVip&, const ServiceVip&) = default;
};

// LoadBalancing.Scope (UNSPECIFIED_SCOPE is dropped by conversion).
enum class LbScope : uint8_t { kRegion, kZone, kSubzone, kNode, kCluster, kNetwork };
// LoadBalancing.Mode. kStandard = UNSPECIFIED_MODE.
enum class LbMode : uint8_t { kStandard, kStrict, kFailover, kPassthrough };
enum class LbHealthPolicy : uint8_t { kOnlyHealthy, kAllowAll };
enum class IpFamilies : uint8_t { kAutomatic, kIpv4Only, kIpv6Only, kDual };
enum class ServiceVisibility : uint8_t { kPublic, kNamespace };

std::string_view toString(LbScope s);
std::string_view toString(LbMode m);
std::string_view toString(LbHealthPolicy p);
std::string_view toString(IpFamilies f);
std::string_view toString(ServiceVisibility v);

struct LoadBalancing {
  std::vector<LbScope> routingPreference;
  LbMode mode = LbMode::kStandard;
  LbHealthPolicy healthPolicy = LbHealthPolicy::kOnlyHealthy;
  friend bool operator==(const LoadBalancing&, const LoadBalancing&) = default;
};

struct WeightedWaypoint {
  GatewayAddress destination;
  uint32_t weight = 0;
  friend bool operator==(const WeightedWaypoint&, const WeightedWaypoint&) = default;
};

struct Service {
  std::string name;
  std::string namespace_;
  std::string hostname;          // FQDN
  std::vector<ServiceVip> vips;  // empty for headless services
  PortMap ports;                 // service port -> target port (0 = named, per endpoint)
  std::vector<std::string> subjectAltNames;
  std::optional<GatewayAddress> waypoint;
  std::vector<WeightedWaypoint> weightedWaypoints;
  std::optional<LoadBalancing> loadBalancing;
  IpFamilies ipFamilies = IpFamilies::kAutomatic;
  bool canonical = false;
  ServiceVisibility visibility = ServiceVisibility::kPublic;

  // "namespace/hostname".
  std::string key() const { return namespace_ + "/" + hostname; }
  // Whether a client in `clientNamespace` may see this service ("" = unknown client: visible).
  bool visibleTo(std::string_view clientNamespace) const {
    return visibility == ServiceVisibility::kPublic || clientNamespace.empty() ||
           clientNamespace == namespace_;
  }
  // Whether an endpoint address of this family may be used (ip_families).
  bool acceptsFamily(IpAddress::Family family) const {
    switch (ipFamilies) {
      case IpFamilies::kIpv4Only:
        return family == IpAddress::Family::kV4;
      case IpFamilies::kIpv6Only:
        return family == IpAddress::Family::kV6;
      case IpFamilies::kAutomatic:
      case IpFamilies::kDual:
        return true;
    }
    return true;
  }
  friend bool operator==(const Service&, const Service&) = default;
};

}  // namespace zt::state
