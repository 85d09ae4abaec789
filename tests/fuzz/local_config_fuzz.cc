// libFuzzer target: the LOCAL_XDS_PATH YAML (parseLocalConfig → buildState) and the lookups the
// proxy then makes on the result. Properties: no crash/UB/leak, no unbounded work; a config that
// parses also builds; every lookup of an object's own address/key finds something; load
// balancing and RBAC evaluation run on whatever was built.
// Note: Debian's yaml-cpp is not instrumented, so coverage guidance stops at our side of it.

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "ztunnel/rbac/authorization.h"
#include "ztunnel/state/proxy_state.h"
#include "ztunnel/state/random.h"
#include "ztunnel/xds/local_config.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size > 64 * 1024) {
    return 0;  // bigger inputs only slow the search down
  }
  std::string_view text(reinterpret_cast<const char*>(data), size);
  zt::xds::ParseLimits limits;
  limits.maxNodes = 200'000;  // alias bombs fail fast instead of timing out the run
  auto config = zt::xds::parseLocalConfig(text, "fuzz.yaml", limits);
  if (!config) {
    if (config.error().detail().rfind("fuzz.yaml", 0) != 0) {
      std::abort();  // every error names its source
    }
    return 0;
  }
  zt::state::StateOptions options;
  auto built = zt::xds::buildState(*config, options, 1);
  if (!built) {
    std::abort();  // the parser must reject everything the builder would
  }
  const zt::state::ProxyState& state = **built;
  zt::state::FastRandom rng(1);

  for (const auto& w : state.workloads()) {
    if (state.workloadByUid(w.uid) != &w) {
      std::abort();
    }
    for (const auto& ip : w.workloadIps) {
      if (w.networkMode == zt::state::NetworkMode::kStandard &&
          state.workloadByAddress(w.network, ip) == nullptr) {
        std::abort();
      }
    }
    if (state.findLocalWorkload(w.namespace_, w.name) == nullptr) {
      std::abort();
    }
    zt::rbac::ConnectionInfo conn;
    conn.sourceIdentity = w.identity();
    conn.destinationIp = w.workloadIps.empty() ? zt::IpAddress() : w.workloadIps.front();
    conn.destinationPort = 8080;
    (void)zt::rbac::evaluate(state, w, conn);
    conn.sourceIdentity.reset();
    (void)zt::rbac::evaluate(state, w, conn);
    if (w.waypoint) {
      (void)state.resolveGateway(*w.waypoint, &w, std::nullopt, rng);
    }
  }
  for (const auto& s : state.services()) {
    if (state.serviceByKey(s.key()) != &s) {
      std::abort();
    }
    for (const auto& vip : s.vips) {
      if (state.serviceByVip(vip.network, vip.address) == nullptr) {
        std::abort();
      }
    }
    const zt::state::Workload* source =
        state.workloads().empty() ? nullptr : &state.workloads().front();
    for (const auto& [port, target] : s.ports) {
      zt::state::EndpointQuery q;
      q.servicePort = port;
      q.source = source;
      if (!s.vips.empty()) {
        q.originalDestination = s.vips.front().address;
      }
      auto up = state.pickEndpoint(s, q, rng);
      if (up && up->kind == zt::state::Upstream::Kind::kWorkloadIp && up->workload == nullptr) {
        std::abort();
      }
    }
    (void)zt::state::ProxyState::pickWaypoint(s, rng);
  }
  return 0;
}
