#include "ztunnel/state/proxy_state.h"

#include <algorithm>
#include <tuple>

#include "ztunnel/core/assert.h"
#include "ztunnel/core/log.h"

namespace zt::state {

namespace {

// Preference among workloads sharing an address or a name (§3.3 note): real pods first (a uid
// with "//Pod/"), then HBONE-capable ones, then a stable order by uid.
bool preferWorkload(const Workload* a, const Workload* b) {
  auto key = [](const Workload* w) {
    return std::make_tuple(w->uid.find("//Pod/") == std::string::npos,
                           w->protocol != TunnelProtocol::kHbone, std::string_view(w->uid));
  };
  return key(a) < key(b);
}

bool scopeMatches(LbScope scope, const Workload& src, const Workload& dst) {
  switch (scope) {
    case LbScope::kRegion:
      return src.locality.region == dst.locality.region;
    case LbScope::kZone:
      return src.locality.zone == dst.locality.zone;
    case LbScope::kSubzone:
      return src.locality.subzone == dst.locality.subzone;
    case LbScope::kNode:
      return src.node == dst.node;
    case LbScope::kCluster:
      return src.clusterId == dst.clusterId;
    case LbScope::kNetwork:
      return src.network == dst.network;
  }
  return false;
}

// FAILOVER/STRICT rank of `dst` for a client `src`: the number of routing preferences matched in
// order, stopping at the first mismatch. When NETWORK is the first preference it is preferred but
// not required: the remaining scopes are ranked either way and a network match adds a boost that
// outranks any number of other matches. Sets `complete` when every required scope matched.
uint32_t rankEndpoint(const LoadBalancing& lb, const Workload& src, const Workload& dst,
                      bool& complete) {
  const auto& prefs = lb.routingPreference;
  const bool networkFirst = !prefs.empty() && prefs.front() == LbScope::kNetwork;
  const size_t start = networkFirst ? 1 : 0;
  uint32_t rank = 0;
  size_t i = start;
  for (; i < prefs.size(); ++i) {
    if (!scopeMatches(prefs[i], src, dst)) {
      break;
    }
    ++rank;
  }
  complete = (i == prefs.size());
  if (networkFirst && src.network == dst.network) {
    rank += static_cast<uint32_t>(prefs.size());
  }
  return rank;
}

// The IP to dial on `w` for `svc` (§3.7): the original destination when the workload owns it,
// else the first allowed IP of the original destination's family, else the first allowed IP.
const IpAddress* chooseIp(const Workload& w, const Service& svc,
                          const std::optional<IpAddress>& originalDst) {
  if (originalDst) {
    for (const auto& ip : w.workloadIps) {
      if (ip == *originalDst) {
        return &ip;
      }
    }
    for (const auto& ip : w.workloadIps) {
      if (ip.family() == originalDst->family() && svc.acceptsFamily(ip.family())) {
        return &ip;
      }
    }
  }
  for (const auto& ip : w.workloadIps) {
    if (svc.acceptsFamily(ip.family())) {
      return &ip;
    }
  }
  return nullptr;
}

struct Candidate {
  const Workload* workload;
  Upstream::Kind kind;
  uint16_t targetPort;
  uint32_t rank;
};

}  // namespace

// ---------------------------------------------------------------------------------------------
// Builder

ProxyState::Builder::Builder(StateOptions options) : state_(new ProxyState()) {
  state_->options_ = std::move(options);
}

ProxyState::Builder& ProxyState::Builder::setVersion(uint64_t version) {
  state_->version_ = version;
  return *this;
}

Status ProxyState::Builder::addWorkload(Workload w) {
  if (w.uid.empty()) {
    return fail(StateErrc::kInvalid, "workload without uid");
  }
  if (w.name.empty() || w.namespace_.empty()) {
    return fail(StateErrc::kInvalid, "workload " + w.uid + " without name or namespace");
  }
  for (const auto& [key, ports] : w.services) {
    auto slash = key.find('/');
    if (slash == std::string::npos || slash == 0 || slash + 1 == key.size()) {
      return fail(StateErrc::kInvalid,
                  "workload " + w.uid + ": service key \"" + key + "\" is not namespace/hostname");
    }
  }
  if (!workloadUids_.insert(w.uid).second) {
    return fail(StateErrc::kDuplicate, "workload uid " + w.uid);
  }
  if (w.serviceAccount.empty()) {
    w.serviceAccount = kDefaultServiceAccount;
  }
  if (w.trustDomain.empty()) {
    w.trustDomain = kDefaultTrustDomain;
  }
  if (w.clusterId.empty()) {
    w.clusterId = state_->options_.clusterId;
  }
  state_->workloads_.push_back(std::move(w));
  return ok();
}

Status ProxyState::Builder::addService(Service s) {
  if (s.namespace_.empty() || s.hostname.empty()) {
    return fail(StateErrc::kInvalid, "service " + s.name + " without namespace or hostname");
  }
  if (!serviceKeys_.insert(s.key()).second) {
    return fail(StateErrc::kDuplicate, "service " + s.key());
  }
  state_->services_.push_back(std::move(s));
  return ok();
}

Status ProxyState::Builder::addPolicy(Authorization p) {
  if (p.name.empty() || p.namespace_.empty()) {
    return fail(StateErrc::kInvalid, "policy without name or namespace");
  }
  if (!policyKeys_.insert(p.key()).second) {
    return fail(StateErrc::kDuplicate, "policy " + p.key());
  }
  state_->policies_.push_back(std::move(p));
  return ok();
}

std::shared_ptr<const ProxyState> ProxyState::Builder::build() && {
  state_->buildIndexes();
  return std::shared_ptr<const ProxyState>(state_.release());
}

std::shared_ptr<const ProxyState> ProxyState::empty(StateOptions options) {
  return Builder(std::move(options)).build();
}

// ---------------------------------------------------------------------------------------------
// Indexes

void ProxyState::buildIndexes() {
  // The vectors are final now, so element addresses are stable for the snapshot's lifetime.
  for (const auto& w : workloads_) {
    workloadByUid_.emplace(w.uid, &w);
    workloadsByNsName_[w.namespace_ + "/" + w.name].push_back(&w);
    if (w.networkMode == NetworkMode::kHostNetwork) {
      continue;  // host-network workloads share the node IP; never resolve them by address
    }
    for (const auto& ip : w.workloadIps) {
      auto& list = workloadsByAddr_[NetIpKey{w.network, ip}];
      if (std::find(list.begin(), list.end(), &w) == list.end()) {
        list.push_back(&w);
      }
    }
  }
  for (auto& [key, list] : workloadsByAddr_) {
    std::sort(list.begin(), list.end(), preferWorkload);
  }
  for (auto& [key, list] : workloadsByNsName_) {
    std::sort(list.begin(), list.end(), preferWorkload);
  }

  for (const auto& s : services_) {
    serviceByKey_.emplace(s.key(), &s);
    servicesByHostname_[s.hostname].push_back(&s);
    for (const auto& vip : s.vips) {
      if (vip.isCidr()) {
        cidrVips_.push_back(CidrVip{vip.network, vip.cidr(), &s});
      } else {
        auto& list = servicesByVip_[NetIpKey{vip.network, vip.address}];
        if (std::find(list.begin(), list.end(), &s) == list.end()) {
          list.push_back(&s);
        }
      }
    }
  }
  std::stable_sort(cidrVips_.begin(), cidrVips_.end(), [](const CidrVip& a, const CidrVip& b) {
    return a.cidr.prefixLength() > b.cidr.prefixLength();
  });

  for (const auto& w : workloads_) {
    for (const auto& [key, ports] : w.services) {
      auto it = serviceByKey_.find(key);
      if (it == serviceByKey_.end()) {
        continue;  // endpoint for a service not in this snapshot: kept on the workload only
      }
      endpoints_[it->second].push_back(Endpoint{&w, &ports});
    }
  }

  for (const auto& p : policies_) {
    policyByKey_.emplace(p.key(), &p);
    const size_t kind = kindIndex(p.action, p.dryRun);
    switch (p.scope) {
      case PolicyScope::kGlobal:
        globalPolicies_.push_back(&p);
        globalPolicyKinds_.byKind[kind].push_back(&p);
        break;
      case PolicyScope::kNamespace:
        if (p.namespace_ == options_.rootNamespace) {
          globalPolicies_.push_back(&p);
          globalPolicyKinds_.byKind[kind].push_back(&p);
        } else {
          namespacePolicies_[p.namespace_].push_back(&p);
          namespacePolicyKinds_[p.namespace_].byKind[kind].push_back(&p);
        }
        break;
      case PolicyScope::kWorkloadSelector:
        break;  // applies only where a workload lists it
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Workloads

const Workload* ProxyState::workloadByUid(std::string_view uid) const {
  auto it = workloadByUid_.find(uid);
  return it == workloadByUid_.end() ? nullptr : it->second;
}

const Workload* ProxyState::workloadByAddress(std::string_view network, const IpAddress& ip) const {
  auto it = workloadsByAddr_.find(NetIpView{network, ip});
  return it == workloadsByAddr_.end() ? nullptr : it->second.front();
}

std::vector<const Workload*> ProxyState::workloadsByAddress(std::string_view network,
                                                            const IpAddress& ip) const {
  auto it = workloadsByAddr_.find(NetIpView{network, ip});
  if (it == workloadsByAddr_.end()) {
    return {};
  }
  return it->second;
}

const Workload* ProxyState::findLocalWorkload(std::string_view ns, std::string_view name,
                                              std::string_view serviceAccount,
                                              std::string_view node) const {
  std::string key;
  key.reserve(ns.size() + name.size() + 1);
  key.append(ns).append("/").append(name);
  auto it = workloadsByNsName_.find(key);
  if (it == workloadsByNsName_.end()) {
    return nullptr;
  }
  for (const Workload* w : it->second) {
    if (!serviceAccount.empty() && w->serviceAccount != serviceAccount) {
      continue;
    }
    if (!node.empty() && w->node != node) {
      continue;
    }
    return w;
  }
  return nullptr;
}

// ---------------------------------------------------------------------------------------------
// Services

const Service* ProxyState::serviceByKey(std::string_view namespacedHostname) const {
  auto it = serviceByKey_.find(namespacedHostname);
  return it == serviceByKey_.end() ? nullptr : it->second;
}

const Service* ProxyState::bestService(const std::vector<const Service*>& candidates,
                                       std::string_view clientNamespace) const {
  const Service* best = nullptr;
  auto key = [&](const Service* s) {
    return std::make_tuple(!clientNamespace.empty() && s->namespace_ != clientNamespace,
                           !s->canonical,
                           !options_.preferredServiceNamespace.empty() &&
                               s->namespace_ != options_.preferredServiceNamespace,
                           std::string_view(s->namespace_), std::string_view(s->hostname));
  };
  for (const Service* s : candidates) {
    if (!s->visibleTo(clientNamespace)) {
      continue;
    }
    if (best == nullptr || key(s) < key(best)) {
      best = s;
    }
  }
  return best;
}

const Service* ProxyState::serviceByVip(std::string_view network, const IpAddress& ip,
                                        std::string_view clientNamespace) const {
  if (auto it = servicesByVip_.find(NetIpView{network, ip}); it != servicesByVip_.end()) {
    if (const Service* s = bestService(it->second, clientNamespace)) {
      return s;
    }
  }
  // CIDR VIPs: visible → client namespace → longest prefix → canonical → preferred ns → key.
  const CidrVip* best = nullptr;
  auto key = [&](const CidrVip& c) {
    const Service* s = c.service;
    return std::make_tuple(!clientNamespace.empty() && s->namespace_ != clientNamespace,
                           -static_cast<int>(c.cidr.prefixLength()), !s->canonical,
                           !options_.preferredServiceNamespace.empty() &&
                               s->namespace_ != options_.preferredServiceNamespace,
                           std::string_view(s->namespace_), std::string_view(s->hostname));
  };
  for (const auto& c : cidrVips_) {
    if (c.network != network || !c.cidr.contains(ip) || !c.service->visibleTo(clientNamespace)) {
      continue;
    }
    if (best == nullptr || key(c) < key(*best)) {
      best = &c;
    }
  }
  return best == nullptr ? nullptr : best->service;
}

const Service* ProxyState::serviceByHostname(std::string_view hostname,
                                             std::string_view clientNamespace) const {
  auto it = servicesByHostname_.find(hostname);
  if (it == servicesByHostname_.end()) {
    return nullptr;
  }
  return bestService(it->second, clientNamespace);
}

const std::vector<ProxyState::Endpoint>& ProxyState::endpointsOf(const Service& service) const {
  static const std::vector<Endpoint> kNone;
  auto it = endpoints_.find(&service);
  if (it == endpoints_.end()) {
    // A Service object from another snapshot: find ours by key.
    const Service* mine = serviceByKey(service.key());
    if (mine == nullptr || mine == &service) {
      return kNone;
    }
    it = endpoints_.find(mine);
    if (it == endpoints_.end()) {
      return kNone;
    }
  }
  return it->second;
}

Result<Upstream> ProxyState::pickEndpoint(const Service& service, const EndpointQuery& query,
                                          RandomSource& rng) const {
  const LoadBalancing* lb = service.loadBalancing ? &*service.loadBalancing : nullptr;
  if (lb != nullptr && lb->mode == LbMode::kPassthrough) {
    Upstream up;
    up.kind = Upstream::Kind::kPassthrough;
    up.targetPort = query.servicePort;
    if (query.originalDestination) {
      up.address = SocketAddress(*query.originalDestination, query.servicePort);
    }
    return up;
  }
  const bool allowUnhealthy = lb != nullptr && lb->healthPolicy == LbHealthPolicy::kAllowAll;
  const bool ranked = lb != nullptr && query.source != nullptr &&
                      (lb->mode == LbMode::kFailover || lb->mode == LbMode::kStrict) &&
                      !lb->routingPreference.empty();
  const std::string_view sourceNetwork =
      query.source != nullptr ? std::string_view(query.source->network) : options_.network;

  thread_local std::vector<Candidate> candidates;
  candidates.clear();
  uint32_t bestRank = 0;
  const auto svcPort = service.ports.find(query.servicePort);
  for (const Endpoint& ep : endpointsOf(service)) {
    const Workload& w = *ep.workload;
    if (!w.isHealthy() && !allowUnhealthy) {
      continue;
    }
    // Reachability: an IP the service allows, a hostname, or a gateway into a remote network.
    Upstream::Kind kind;
    if (chooseIp(w, service, std::nullopt) != nullptr) {
      kind = Upstream::Kind::kWorkloadIp;
    } else if (w.workloadIps.empty() && !w.hostname.empty()) {
      kind = Upstream::Kind::kHostname;
    } else if (w.workloadIps.empty() && w.network != sourceNetwork && w.networkGateway) {
      kind = Upstream::Kind::kNetworkGateway;
    } else {
      continue;
    }
    // Port: the endpoint's own mapping, else the service's target port, else (waypoint lookups
    // of an application-tunnel workload) the service port itself.
    uint16_t target = 0;
    if (auto it = ep.ports->find(query.servicePort); it != ep.ports->end() && it->second != 0) {
      target = it->second;
    } else if (svcPort != service.ports.end() && svcPort->second != 0) {
      target = svcPort->second;
    } else if (query.waypointLookup && w.applicationTunnel) {
      target = query.servicePort;
    } else {
      continue;
    }
    uint32_t rank = 0;
    if (ranked) {
      bool complete = false;
      rank = rankEndpoint(*lb, *query.source, w, complete);
      if (lb->mode == LbMode::kStrict && !complete) {
        continue;
      }
    }
    bestRank = std::max(bestRank, rank);
    candidates.push_back(Candidate{&w, kind, target, rank});
  }

  uint64_t total = 0;
  for (const auto& c : candidates) {
    if (c.rank == bestRank) {
      total += c.workload->capacity;
    }
  }
  if (total == 0) {
    return fail(StateErrc::kNoHealthyUpstream, service.key());
  }
  uint64_t draw = rng.uniform(total);
  const Candidate* chosen = nullptr;
  for (const auto& c : candidates) {
    if (c.rank != bestRank || c.workload->capacity == 0) {
      continue;
    }
    if (draw < c.workload->capacity) {
      chosen = &c;
      break;
    }
    draw -= c.workload->capacity;
  }
  // The loop above always ends on a candidate because draw < total.
  ZT_ASSERT(chosen != nullptr);
  Upstream up;
  up.kind = chosen->kind;
  up.workload = chosen->workload;
  up.targetPort = chosen->targetPort;
  if (chosen->kind == Upstream::Kind::kWorkloadIp) {
    const IpAddress* ip = chooseIp(*chosen->workload, service, query.originalDestination);
    up.address = SocketAddress(*ip, chosen->targetPort);
  } else {
    up.address = SocketAddress(IpAddress(), chosen->targetPort);
  }
  return up;
}

const GatewayAddress* ProxyState::pickWaypoint(const Service& service, RandomSource& rng) {
  uint64_t total = 0;
  for (const auto& ww : service.weightedWaypoints) {
    total += ww.weight;
  }
  if (total > 0) {
    uint64_t draw = rng.uniform(total);
    for (const auto& ww : service.weightedWaypoints) {
      if (draw < ww.weight) {
        return &ww.destination;
      }
      draw -= ww.weight;
    }
  }
  return service.waypoint ? &*service.waypoint : nullptr;
}

Result<GatewayTarget> ProxyState::resolveGateway(const GatewayAddress& gateway,
                                                 const Workload* source,
                                                 std::optional<IpAddress> originalDestination,
                                                 RandomSource& rng) const {
  const Service* svc = nullptr;
  if (const NetworkAddress* addr = gateway.address()) {
    if (const Workload* w = workloadByAddress(addr->network, addr->address)) {
      return GatewayTarget{w, nullptr, SocketAddress(addr->address, gateway.hboneMtlsPort)};
    }
    svc = serviceByVip(addr->network, addr->address);
    if (svc == nullptr) {
      return fail(StateErrc::kUnknownWaypoint, addr->network + "/" + addr->address.toString());
    }
  } else {
    const NamespacedHostname& nh = *gateway.hostname();
    svc = serviceByKey(nh.key());
    if (svc == nullptr) {
      return fail(StateErrc::kUnknownWaypoint, nh.key());
    }
  }
  EndpointQuery query{gateway.hboneMtlsPort, source, originalDestination, true};
  auto up = pickEndpoint(*svc, query, rng);
  if (!up) {
    return fail(std::move(up).error());
  }
  if (up->kind != Upstream::Kind::kWorkloadIp) {
    // A waypoint must be dialed directly; hostname or cross-network waypoints are not usable.
    return fail(StateErrc::kNoHealthyUpstream, svc->key() + ": waypoint endpoint has no IP");
  }
  return GatewayTarget{up->workload, svc, up->address};
}

// ---------------------------------------------------------------------------------------------
// Policies

const Authorization* ProxyState::policyByKey(std::string_view key) const {
  auto it = policyByKey_.find(key);
  return it == policyByKey_.end() ? nullptr : it->second;
}

bool ProxyState::policyCoveredByScope(const Authorization& p, const Workload& destination) const {
  switch (p.scope) {
    case PolicyScope::kGlobal:
      return true;
    case PolicyScope::kNamespace:
      return p.namespace_ == destination.namespace_ || p.namespace_ == options_.rootNamespace;
    case PolicyScope::kWorkloadSelector:
      return false;
  }
  return false;
}

void ProxyState::policiesFor(const Workload& destination,
                             std::vector<const Authorization*>& out) const {
  out.clear();
  out.insert(out.end(), globalPolicies_.begin(), globalPolicies_.end());
  if (destination.namespace_ != options_.rootNamespace) {
    if (auto it = namespacePolicies_.find(destination.namespace_); it != namespacePolicies_.end()) {
      out.insert(out.end(), it->second.begin(), it->second.end());
    }
  }
  const size_t selectedStart = out.size();
  for (const auto& key : destination.authorizationPolicies) {
    const Authorization* p = policyByKey(key);
    if (p == nullptr) {
      ZT_DEBUG("workload {} lists policy {} which is not known (yet); skipped", destination.uid,
               key);
      continue;
    }
    if (policyCoveredByScope(*p, destination)) {
      continue;  // already in the scope lists above
    }
    if (std::find(out.begin() + static_cast<std::ptrdiff_t>(selectedStart), out.end(), p) !=
        out.end()) {
      continue;  // listed twice
    }
    out.push_back(p);
  }
}

std::vector<const Authorization*> ProxyState::policiesFor(const Workload& destination) const {
  std::vector<const Authorization*> out;
  policiesFor(destination, out);
  return out;
}

}  // namespace zt::state
