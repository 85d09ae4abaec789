#include "ztunnel/state/random.h"

#include <random>

namespace zt::state {

uint64_t RandomSource::uniform(uint64_t bound) {
  // Reject the low (2^64 mod bound) values so every residue is equally likely.
  const uint64_t threshold = (0 - bound) % bound;
  for (;;) {
    uint64_t r = next();
    if (r >= threshold) {
      return r % bound;
    }
  }
}

namespace {
uint64_t splitmix64(uint64_t& x) {
  uint64_t z = (x += 0x9e3779b97f4a7c15ULL);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}
uint64_t rotl(uint64_t x, int k) {
  return (x << k) | (x >> (64 - k));
}
}  // namespace

FastRandom::FastRandom(uint64_t seed) {
  for (auto& s : s_) {
    s = splitmix64(seed);
  }
}

FastRandom::FastRandom()
    : FastRandom((static_cast<uint64_t>(std::random_device{}()) << 32) ^ std::random_device{}()) {}

uint64_t FastRandom::next() {
  const uint64_t result = rotl(s_[1] * 5, 7) * 9;
  const uint64_t t = s_[1] << 17;
  s_[2] ^= s_[0];
  s_[3] ^= s_[1];
  s_[1] ^= s_[2];
  s_[0] ^= s_[3];
  s_[2] ^= t;
  s_[3] = rotl(s_[3], 45);
  return result;
}

}  // namespace zt::state
