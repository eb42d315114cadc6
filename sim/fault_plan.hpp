#pragma once
// Which fault, if any, a calls/start request gets. One draw per request splits [0, 1) into
// consecutive ranges (429, 503, 500 after placing, drop after placing, none), so each fault has
// exactly its probability and a seed replays the same sequence.
#include <cstdint>

#include "sim/prng.hpp"

namespace dialer::sim {

enum class fault_decision : std::uint8_t {
  none,
  http_429,
  http_503,
  after_place_500,
  drop_after_place,
};

class fault_plan {
 public:
  fault_plan() = default;
  // The probabilities must add up to at most 1 (sim_config checks it).
  fault_plan(double p_429, double p_503, double p_500_after_place, double p_drop_after_place);

  [[nodiscard]] fault_decision draw(prng& rng) const;

 private:
  double upto_429_ = 0;
  double upto_503_ = 0;
  double upto_500_ = 0;
  double upto_drop_ = 0;
};

}  // namespace dialer::sim
