#pragma once

// ProxyState: one immutable snapshot of everything the control plane told us (workloads,
// services, authorization policies) plus the indexes the data path looks things up in
// (spec §3.7). Built once with ProxyState::Builder, then published through StateStore.
//
// Thread-safety: after build() the object is never modified, so every const method may be called
// from any thread without locks. Lifetime: pointers and references returned by lookups point
// into the snapshot and stay valid as long as the caller holds the shared_ptr to it; a
// connection therefore keeps the shared_ptr it started with.
//
// Lookups never allocate on the steady path except where noted (policiesFor's vector overload,
// error values).

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "ztunnel/core/log.h"
#include "ztunnel/core/result.h"
#include "ztunnel/core/sockaddr.h"
#include "ztunnel/state/errc.h"
#include "ztunnel/state/policy.h"
#include "ztunnel/state/random.h"
#include "ztunnel/state/service.h"
#include "ztunnel/state/workload.h"

namespace zt::state {

// Process-wide settings that shape lookups (from env, §7).
struct StateOptions {
  std::string network;                         // NETWORK: this node's network ("" = default)
  std::string rootNamespace = "istio-system";  // mesh root namespace (global policies)
  std::string clusterId{kDefaultClusterId};    // CLUSTER_ID: default for workloads without one
  std::string preferredServiceNamespace;       // PREFERED_SERVICE_NAMESPACE tie-break
};

// The result of choosing where a connection to a service goes (§1.8, §3.7).
struct Upstream {
  enum class Kind : uint8_t {
    kWorkloadIp,      // connect to `address` = chosen workload IP : target port
    kHostname,        // the workload has only a hostname: resolve workload->hostname (prefer the
                      // family of the original destination), then use port `targetPort`
    kNetworkGateway,  // IP-less workload on another network: reach it through
                      // workload->networkGateway (double HBONE); `targetPort` is the inner port
    kPassthrough,     // LB mode PASSTHROUGH: connect (plain TCP) to the original destination;
                      // `address` = original destination : service port when it was given
  };
  Kind kind = Kind::kWorkloadIp;
  const Workload* workload = nullptr;  // null only for kPassthrough
  SocketAddress address;
  uint16_t targetPort = 0;
};

// What pickEndpoint is asked.
struct EndpointQuery {
  uint16_t servicePort = 0;
  // The client workload: supplies network, locality, node and cluster for FAILOVER/STRICT
  // ranking. May be null (then every candidate ranks equally and the network is
  // StateOptions::network).
  const Workload* source = nullptr;
  // The address the client dialed (usually the VIP): its family is preferred for dual-stack
  // endpoints, and an endpoint owning exactly this IP uses it.
  std::optional<IpAddress> originalDestination;
  // Waypoint resolution: a workload with an application tunnel is accepted even when no port
  // mapping is known (the service port is used).
  bool waypointLookup = false;
};

// A resolved waypoint / gateway (§3.7 "Waypoint (GatewayAddress)").
struct GatewayTarget {
  const Workload* workload = nullptr;  // the gateway workload (never null on success)
  const Service* service = nullptr;    // set when the address named a service
  SocketAddress address;               // where to dial HBONE: workload IP : HBONE port
};

class ProxyState {
 public:
  class Builder;

  ProxyState(const ProxyState&) = delete;
  ProxyState& operator=(const ProxyState&) = delete;

  // An empty snapshot (version 0): no workloads, services or policies.
  static std::shared_ptr<const ProxyState> empty(StateOptions options = {});

  // Monotonic generation chosen by the producer (Builder::setVersion); cheap to compare.
  uint64_t version() const { return version_; }
  const StateOptions& options() const { return options_; }

  // All objects, in insertion order (admin config dump, cert prefetch, tests).
  const std::vector<Workload>& workloads() const { return workloads_; }
  const std::vector<Service>& services() const { return services_; }
  const std::vector<Authorization>& policies() const { return policies_; }

  // ---- workloads ----

  // By uid; null if unknown.
  const Workload* workloadByUid(std::string_view uid) const;

  // By `network/IP` (HOST_NETWORK workloads are not indexed). When several workloads share the
  // address the preferred one is returned: a uid containing "//Pod/" first (istiod names pods
  // "<cluster>//Pod/<ns>/<name>"; the check is literal, as in ztunnel), then HBONE ones, then the
  // lowest uid (§3.3 note). Null if none.
  const Workload* workloadByAddress(std::string_view network, const IpAddress& ip) const;
  // Every workload on the address, preferred first (empty if none).
  std::vector<const Workload*> workloadsByAddress(std::string_view network,
                                                  const IpAddress& ip) const;

  // The local workload of dedicated mode (PROXY_WORKLOAD_INFO "ns/name/sa") or of a ZDS
  // WorkloadInfo: namespace + name must match; `serviceAccount` and `node` are compared only
  // when non-empty. Preference among several as for workloadByAddress. Null if none.
  const Workload* findLocalWorkload(std::string_view ns, std::string_view name,
                                    std::string_view serviceAccount = {},
                                    std::string_view node = {}) const;

  // ---- services ----

  // By "namespace/hostname"; null if unknown.
  const Service* serviceByKey(std::string_view namespacedHostname) const;

  // By `network/VIP`: exact VIPs first, then CIDR VIPs containing the address. Among several
  // candidates: drop those not visible to `clientNamespace`, prefer the client's namespace, then
  // (CIDR only) the longest prefix, then `canonical`, then PREFERED_SERVICE_NAMESPACE, then the
  // lowest key. `clientNamespace` "" = unknown client (no visibility filtering). Null if none.
  const Service* serviceByVip(std::string_view network, const IpAddress& ip,
                              std::string_view clientNamespace = {}) const;

  // By hostname across namespaces (inbound authority hostnames, §2.4 step 6), same tie-breaks
  // as serviceByVip. Null if none.
  const Service* serviceByHostname(std::string_view hostname,
                                   std::string_view clientNamespace = {}) const;

  // The workloads backing a service (those whose Workload::services names it), healthy or not,
  // in insertion order. Empty if none or the service is not in this snapshot.
  struct Endpoint {
    const Workload* workload;
    const PortMap* ports;  // the workload's own port map for this service
  };
  const std::vector<Endpoint>& endpointsOf(const Service& service) const;

  // Chooses the endpoint for a connection to `service` on `query.servicePort` (§3.7):
  //  - candidates: workloads backing the service that are healthy (unless health policy
  //    ALLOW_ALL); that have an IP of a family the service allows, or only a hostname, or no
  //    address but are on another network than the source and have a network gateway; and whose
  //    port is known (own mapping non-zero, else the service target port non-zero, else for
  //    waypoint lookups an application-tunnel workload with the service port);
  //  - LB mode STANDARD: all candidates; FAILOVER/STRICT: keep the best rank by routing
  //    preference (STRICT drops endpoints not matching every scope); PASSTHROUGH: no selection,
  //    Kind::kPassthrough;
  //  - weighted random by Workload::capacity using `rng`;
  //  - target port: the endpoint's mapping, else the service's target port, else the service
  //    port (app tunnel);
  //  - IP: the original destination if the workload owns it, else the first IP of the original
  //    destination's family allowed by ip_families, else the first allowed IP.
  // Error StateErrc::kNoHealthyUpstream ("no healthy upstream") when nothing qualifies.
  // `service` should come from this snapshot (looked up by key otherwise).
  Result<Upstream> pickEndpoint(const Service& service, const EndpointQuery& query,
                                RandomSource& rng) const;
  Result<Upstream> pickEndpoint(const Service& service, uint16_t servicePort,
                                const Workload* source, RandomSource& rng) const {
    return pickEndpoint(service, EndpointQuery{servicePort, source, std::nullopt, false}, rng);
  }

  // The waypoint a connection to `service` should use: one of weightedWaypoints sampled by
  // weight (all-zero or empty ⇒ `waypoint`). Null when the service has no waypoint.
  static const GatewayAddress* pickWaypoint(const Service& service, RandomSource& rng);

  // Resolves a waypoint / network gateway address: by address ⇒ a workload on that network/IP,
  // else a service VIP load-balanced (waypoint lookup, port = hboneMtlsPort); by hostname ⇒ the
  // service "ns/hostname" load-balanced. Error StateErrc::kUnknownWaypoint if it names nothing,
  // kNoHealthyUpstream if a service has no usable endpoint.
  Result<GatewayTarget> resolveGateway(const GatewayAddress& gateway, const Workload* source,
                                       std::optional<IpAddress> originalDestination,
                                       RandomSource& rng) const;

  // ---- policies ----

  // By "namespace/name"; null if unknown.
  const Authorization* policyByKey(std::string_view key) const;

  // The policies that apply to connections to `destination` (§4.3): GLOBAL-scope policies,
  // NAMESPACE-scope policies of the root namespace (Istio treats those as mesh-wide), NAMESPACE-
  // scope policies of the destination's namespace, and the policies listed by key in
  // destination.authorizationPolicies (keys not in this snapshot are skipped with a debug log).
  // Each policy appears once. `out` is cleared first (reuse it to avoid allocating).
  void policiesFor(const Workload& destination, std::vector<const Authorization*>& out) const;
  std::vector<const Authorization*> policiesFor(const Workload& destination) const;

  // The same set restricted to one (action, dryRun) kind, visited without building a list:
  // calls `visit(const Authorization&)` for each (scope lists are pre-split by kind at build
  // time, so kinds that are absent cost nothing). `visit` returns false to stop early; the
  // function returns false iff stopped. This is what rbac::evaluate uses per connection.
  template <class F>
  bool forEachPolicyFor(const Workload& destination, PolicyAction action, bool dryRun,
                        F&& visit) const;

 private:
  ProxyState() = default;

  struct NetIpKey {
    std::string network;
    IpAddress ip;
  };
  struct NetIpView {
    std::string_view network;
    IpAddress ip;
  };
  struct NetIpHash {
    using is_transparent = void;
    size_t operator()(const NetIpKey& k) const noexcept { return hash(k.network, k.ip); }
    size_t operator()(const NetIpView& k) const noexcept { return hash(k.network, k.ip); }
    static size_t hash(std::string_view network, const IpAddress& ip) noexcept {
      return std::hash<std::string_view>()(network) * 31 + std::hash<IpAddress>()(ip);
    }
  };
  struct NetIpEq {
    using is_transparent = void;
    template <class A, class B>
    bool operator()(const A& a, const B& b) const noexcept {
      return a.ip == b.ip && std::string_view(a.network) == std::string_view(b.network);
    }
  };
  struct StringHash {
    using is_transparent = void;
    size_t operator()(std::string_view s) const noexcept {
      return std::hash<std::string_view>()(s);
    }
  };
  template <class V>
  using StringMap = std::unordered_map<std::string, V, StringHash, std::equal_to<>>;
  template <class V>
  using NetIpMap = std::unordered_map<NetIpKey, V, NetIpHash, NetIpEq>;

  // Policies of one scope split by kind: index kindIndex(action, dryRun).
  struct PolicyKinds {
    std::vector<const Authorization*> byKind[4];
  };
  static constexpr size_t kindIndex(PolicyAction action, bool dryRun) {
    return (action == PolicyAction::kDeny ? 2u : 0u) + (dryRun ? 1u : 0u);
  }

  struct CidrVip {
    std::string network;
    Cidr cidr;
    const Service* service;
  };

  void buildIndexes();
  const Service* bestService(const std::vector<const Service*>& candidates,
                             std::string_view clientNamespace) const;
  bool policyCoveredByScope(const Authorization& p, const Workload& destination) const;

  uint64_t version_ = 0;
  StateOptions options_;
  std::vector<Workload> workloads_;
  std::vector<Service> services_;
  std::vector<Authorization> policies_;

  StringMap<const Workload*> workloadByUid_;
  NetIpMap<std::vector<const Workload*>> workloadsByAddr_;
  StringMap<std::vector<const Workload*>> workloadsByNsName_;  // "ns/name"

  StringMap<const Service*> serviceByKey_;
  NetIpMap<std::vector<const Service*>> servicesByVip_;
  std::vector<CidrVip> cidrVips_;  // longest prefix first
  StringMap<std::vector<const Service*>> servicesByHostname_;
  std::unordered_map<const Service*, std::vector<Endpoint>> endpoints_;

  StringMap<const Authorization*> policyByKey_;
  StringMap<std::vector<const Authorization*>> namespacePolicies_;  // NAMESPACE scope by ns
  std::vector<const Authorization*> globalPolicies_;                // GLOBAL + root-ns NAMESPACE
  StringMap<PolicyKinds> namespacePolicyKinds_;                     // the same, split by kind
  PolicyKinds globalPolicyKinds_;
};

template <class F>
bool ProxyState::forEachPolicyFor(const Workload& destination, PolicyAction action, bool dryRun,
                                  F&& visit) const {
  const size_t kind = kindIndex(action, dryRun);
  for (const Authorization* p : globalPolicyKinds_.byKind[kind]) {
    if (!visit(*p)) {
      return false;
    }
  }
  if (destination.namespace_ != options_.rootNamespace) {
    if (auto it = namespacePolicyKinds_.find(destination.namespace_);
        it != namespacePolicyKinds_.end()) {
      for (const Authorization* p : it->second.byKind[kind]) {
        if (!visit(*p)) {
          return false;
        }
      }
    }
  }
  const auto& keys = destination.authorizationPolicies;
  for (size_t i = 0; i < keys.size(); ++i) {
    const Authorization* p = policyByKey(keys[i]);
    if (p == nullptr && kind == kindIndex(PolicyAction::kDeny, false)) {
      // Logged on the one pass every evaluation makes.
      ZT_DEBUG("workload {} lists policy {} which is not known (yet); skipped", destination.uid,
               keys[i]);
    }
    if (p == nullptr || p->action != action || p->dryRun != dryRun ||
        policyCoveredByScope(*p, destination)) {
      continue;  // unknown, other kind, or already visited above
    }
    bool listedBefore = false;
    for (size_t j = 0; j < i && !listedBefore; ++j) {
      listedBefore = keys[j] == keys[i];
    }
    if (!listedBefore && !visit(*p)) {
      return false;
    }
  }
  return true;
}

// Collects objects for one snapshot. Not thread-safe; use on one thread, then build().
class ProxyState::Builder {
 public:
  explicit Builder(StateOptions options = {});

  // The snapshot's version() (default 0).
  Builder& setVersion(uint64_t version);

  // Adds a workload. Normalises empty serviceAccount/trustDomain/clusterId to their defaults
  // (clusterId to StateOptions::clusterId). Errors: kInvalid (empty uid, name or namespace, a
  // services key without '/'), kDuplicate (uid already added).
  Status addWorkload(Workload workload);
  // Errors: kInvalid (empty namespace or hostname), kDuplicate ("ns/hostname" already added).
  Status addService(Service service);
  // Errors: kInvalid (empty name or namespace), kDuplicate ("ns/name" already added).
  Status addPolicy(Authorization policy);

  // Builds the indexes and returns the immutable snapshot. The builder is consumed.
  std::shared_ptr<const ProxyState> build() &&;

 private:
  std::unique_ptr<ProxyState> state_;
  std::unordered_set<std::string> workloadUids_;
  std::unordered_set<std::string> serviceKeys_;
  std::unordered_set<std::string> policyKeys_;
};

}  // namespace zt::state
