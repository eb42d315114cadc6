#pragma once
// The simulator's one source of randomness: xoshiro256** seeded through splitmix64, so a --seed
// reproduces every draw (faults, durations, latencies, session ids) for the same request order.
// Not thread-safe: the simulator draws under its lock.
#include <cstdint>

namespace dialer::sim {

class prng {
 public:
  explicit prng(std::uint64_t seed) {
    for (auto& word : s_) {
      seed += 0x9e3779b97f4a7c15ULL;
      std::uint64_t z = seed;
      z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
      z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
      word = z ^ (z >> 31);
    }
  }

  std::uint64_t next() {
    const std::uint64_t result = rotl(s_[1] * 5, 7) * 9;
    const std::uint64_t t = s_[1] << 17;
    s_[2] ^= s_[0];
    s_[3] ^= s_[1];
    s_[1] ^= s_[2];
    s_[0] ^= s_[3];
    s_[2] ^= t;
    s_[3] = rotl(s_[3], 45);
    return result;
  }

  // Uniform in [0, 1) with 53 bits of precision.
  double uniform01() { return static_cast<double>(next() >> 11) * 0x1.0p-53; }

  // Uniform in [lo, hi] (inclusive); Lemire's multiply-shift, whose bias (< 2^-64 per value) is
  // far below anything a test could observe.
  std::int64_t uniform(std::int64_t lo, std::int64_t hi) {
    if (hi <= lo) {
      return lo;
    }
    const auto span = static_cast<unsigned __int128>(static_cast<std::uint64_t>(hi - lo)) + 1;
    return lo + static_cast<std::int64_t>((static_cast<unsigned __int128>(next()) * span) >> 64);
  }

 private:
  static std::uint64_t rotl(std::uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }
  std::uint64_t s_[4];
};

}  // namespace dialer::sim
