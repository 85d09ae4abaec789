#pragma once

// RandomSource: the random numbers load balancing draws, injected so tests are deterministic.
// Not thread-safe: use one per thread (workers own theirs).

#include <cstdint>

namespace zt::state {

class RandomSource {
 public:
  virtual ~RandomSource() = default;
  // 64 uniformly distributed bits.
  virtual uint64_t next() = 0;
  // Uniform in [0, bound); bound must be > 0. Unbiased (rejection sampling).
  uint64_t uniform(uint64_t bound);
};

// xoshiro256** seeded through splitmix64. Fast and good enough for load balancing (not for
// cryptography).
class FastRandom final : public RandomSource {
 public:
  explicit FastRandom(uint64_t seed);
  // Seeded from std::random_device.
  FastRandom();
  uint64_t next() override;

 private:
  uint64_t s_[4];
};

}  // namespace zt::state
