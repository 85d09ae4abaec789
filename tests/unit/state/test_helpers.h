#pragma once

// Small builders shared by the state tests.

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "ztunnel/state/proxy_state.h"

namespace zt::state::testing {

inline IpAddress ip(std::string_view text) {
  auto parsed = IpAddress::parse(text);
  EXPECT_TRUE(parsed.has_value()) << text;
  return parsed.value_or(IpAddress());
}

inline Workload makeWorkload(std::string uid, std::string ns, std::string name,
                             std::vector<std::string> ips,
                             TunnelProtocol protocol = TunnelProtocol::kHbone) {
  Workload w;
  w.uid = std::move(uid);
  w.namespace_ = std::move(ns);
  w.name = std::move(name);
  for (const auto& s : ips) {
    w.workloadIps.push_back(ip(s));
  }
  w.protocol = protocol;
  return w;
}

inline ServiceVip vip(std::string network, std::string_view address,
                      std::optional<uint8_t> prefix = std::nullopt) {
  return ServiceVip{std::move(network), ip(address), prefix};
}

inline Service makeService(std::string ns, std::string hostname, std::vector<ServiceVip> vips,
                           PortMap ports) {
  Service s;
  s.name = hostname.substr(0, hostname.find('.'));
  s.namespace_ = std::move(ns);
  s.hostname = std::move(hostname);
  s.vips = std::move(vips);
  s.ports = std::move(ports);
  return s;
}

// Returns the given values in turn (cycling), for exact control over load-balancing draws.
class SequenceRandom final : public RandomSource {
 public:
  explicit SequenceRandom(std::vector<uint64_t> values) : values_(std::move(values)) {}
  uint64_t next() override { return values_[i_++ % values_.size()]; }

 private:
  std::vector<uint64_t> values_;
  size_t i_ = 0;
};

// Builds a snapshot, failing the test on any builder error.
struct StateBuilder {
  ProxyState::Builder builder;
  explicit StateBuilder(StateOptions options = {}) : builder(std::move(options)) {}
  StateBuilder& add(Workload w) {
    auto st = builder.addWorkload(std::move(w));
    EXPECT_TRUE(st.has_value()) << st.error().message();
    return *this;
  }
  StateBuilder& add(Service s) {
    auto st = builder.addService(std::move(s));
    EXPECT_TRUE(st.has_value()) << st.error().message();
    return *this;
  }
  StateBuilder& add(Authorization p) {
    auto st = builder.addPolicy(std::move(p));
    EXPECT_TRUE(st.has_value()) << st.error().message();
    return *this;
  }
  std::shared_ptr<const ProxyState> build() { return std::move(builder).build(); }
};

}  // namespace zt::state::testing

namespace zt::state::testing {
// A raw value that RandomSource::uniform(bound) maps to `x` (above the rejection threshold).
inline uint64_t drawOf(uint64_t x, uint64_t bound) {
  return bound * 1024 + x;
}
}  // namespace zt::state::testing
