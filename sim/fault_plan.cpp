#include "sim/fault_plan.hpp"

namespace dialer::sim {

fault_plan::fault_plan(double p_429, double p_503, double p_500_after_place,
                       double p_drop_after_place)
    : upto_429_(p_429),
      upto_503_(upto_429_ + p_503),
      upto_500_(upto_503_ + p_500_after_place),
      upto_drop_(upto_500_ + p_drop_after_place) {}

fault_decision fault_plan::draw(prng& rng) const {
  const double u = rng.uniform01();
  if (u < upto_429_) {
    return fault_decision::http_429;
  }
  if (u < upto_503_) {
    return fault_decision::http_503;
  }
  if (u < upto_500_) {
    return fault_decision::after_place_500;
  }
  if (u < upto_drop_) {
    return fault_decision::drop_after_place;
  }
  return fault_decision::none;
}

}  // namespace dialer::sim
