// String names and small helpers of the state value types.

#include <algorithm>

#include "ztunnel/state/errc.h"
#include "ztunnel/state/policy.h"
#include "ztunnel/state/service.h"
#include "ztunnel/state/workload.h"

namespace zt::state {

std::string_view toString(TunnelProtocol p) {
  switch (p) {
    case TunnelProtocol::kNone:
      return "TCP";
    case TunnelProtocol::kHbone:
      return "HBONE";
  }
  return "?";
}

std::string_view toString(NetworkMode m) {
  switch (m) {
    case NetworkMode::kStandard:
      return "Standard";
    case NetworkMode::kHostNetwork:
      return "HostNetwork";
  }
  return "?";
}

std::string_view toString(HealthStatus s) {
  switch (s) {
    case HealthStatus::kHealthy:
      return "Healthy";
    case HealthStatus::kUnhealthy:
      return "Unhealthy";
  }
  return "?";
}

std::string_view toString(WorkloadType t) {
  switch (t) {
    case WorkloadType::kDeployment:
      return "deployment";
    case WorkloadType::kCronJob:
      return "cronjob";
    case WorkloadType::kPod:
      return "pod";
    case WorkloadType::kJob:
      return "job";
  }
  return "?";
}

std::string_view toString(AppTunnelProtocol p) {
  switch (p) {
    case AppTunnelProtocol::kNone:
      return "NONE";
    case AppTunnelProtocol::kProxy:
      return "PROXY";
  }
  return "?";
}

std::string_view toString(LbScope s) {
  switch (s) {
    case LbScope::kRegion:
      return "Region";
    case LbScope::kZone:
      return "Zone";
    case LbScope::kSubzone:
      return "Subzone";
    case LbScope::kNode:
      return "Node";
    case LbScope::kCluster:
      return "Cluster";
    case LbScope::kNetwork:
      return "Network";
  }
  return "?";
}

std::string_view toString(LbMode m) {
  switch (m) {
    case LbMode::kStandard:
      return "Standard";
    case LbMode::kStrict:
      return "Strict";
    case LbMode::kFailover:
      return "Failover";
    case LbMode::kPassthrough:
      return "Passthrough";
  }
  return "?";
}

std::string_view toString(LbHealthPolicy p) {
  switch (p) {
    case LbHealthPolicy::kOnlyHealthy:
      return "OnlyHealthy";
    case LbHealthPolicy::kAllowAll:
      return "AllowAll";
  }
  return "?";
}

std::string_view toString(IpFamilies f) {
  switch (f) {
    case IpFamilies::kAutomatic:
      return "Automatic";
    case IpFamilies::kIpv4Only:
      return "IPv4Only";
    case IpFamilies::kIpv6Only:
      return "IPv6Only";
    case IpFamilies::kDual:
      return "Dual";
  }
  return "?";
}

std::string_view toString(ServiceVisibility v) {
  switch (v) {
    case ServiceVisibility::kPublic:
      return "Public";
    case ServiceVisibility::kNamespace:
      return "Namespace";
  }
  return "?";
}

std::string_view toString(PolicyScope s) {
  switch (s) {
    case PolicyScope::kGlobal:
      return "Global";
    case PolicyScope::kNamespace:
      return "Namespace";
    case PolicyScope::kWorkloadSelector:
      return "WorkloadSelector";
  }
  return "?";
}

std::string_view toString(PolicyAction a) {
  switch (a) {
    case PolicyAction::kAllow:
      return "Allow";
    case PolicyAction::kDeny:
      return "Deny";
  }
  return "?";
}

std::string Identity::toUri() const {
  return "spiffe://" + toPrincipal();
}

std::string Identity::toPrincipal() const {
  std::string out;
  out.reserve(trustDomain.size() + namespace_.size() + serviceAccount.size() + 8);
  out += trustDomain;
  out += "/ns/";
  out += namespace_;
  out += "/sa/";
  out += serviceAccount;
  return out;
}

std::optional<Identity> Identity::parseUri(std::string_view uri) {
  constexpr std::string_view kScheme = "spiffe://";
  if (!uri.starts_with(kScheme)) {
    return std::nullopt;
  }
  uri.remove_prefix(kScheme.size());
  std::string_view parts[5];
  for (int i = 0; i < 5; ++i) {
    auto slash = uri.find('/');
    if (i == 4) {
      if (slash != std::string_view::npos) {
        return std::nullopt;  // more than 5 segments
      }
      parts[i] = uri;
    } else {
      if (slash == std::string_view::npos) {
        return std::nullopt;
      }
      parts[i] = uri.substr(0, slash);
      uri.remove_prefix(slash + 1);
    }
  }
  if (parts[1] != "ns" || parts[3] != "sa" || parts[0].empty() || parts[2].empty() ||
      parts[4].empty()) {
    return std::nullopt;
  }
  return Identity{std::string(parts[0]), std::string(parts[2]), std::string(parts[4])};
}

bool Workload::hasIp(const IpAddress& ip) const {
  return std::find(workloadIps.begin(), workloadIps.end(), ip) != workloadIps.end();
}

Cidr ServiceVip::cidr() const {
  const uint8_t full = address.isV4() ? 32 : 128;
  auto c = Cidr::make(address, prefixLength.value_or(full));
  return c ? *c : *Cidr::make(address, full);
}

std::string ServiceVip::toString() const {
  // Appends rather than operator+ chains: GCC 12 -O3 raises a false -Wrestrict on the latter.
  std::string out = network;
  out += '/';
  out += address.toString();
  if (prefixLength) {
    out += '/';
    out += std::to_string(*prefixLength);
  }
  return out;
}

namespace {
std::string_view describeState(int code) noexcept {
  switch (static_cast<StateErrc>(code)) {
    case StateErrc::kInvalid:
      return "invalid object";
    case StateErrc::kDuplicate:
      return "duplicate key";
    case StateErrc::kNoHealthyUpstream:
      return "no healthy upstream";
    case StateErrc::kUnknownWaypoint:
      return "unknown waypoint";
  }
  return "unknown state error";
}
}  // namespace

const ErrorCategory& errorCategory(StateErrc) noexcept {
  static constexpr ErrorCategory kCategory{"state", &describeState};
  return kCategory;
}

}  // namespace zt::state
