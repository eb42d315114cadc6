#include "core/time.hpp"

namespace dialer {
namespace {

class real_time_source final : public time_source {
 public:
  steady_time steady_now() const override { return std::chrono::steady_clock::now(); }
  system_time system_now() const override { return std::chrono::system_clock::now(); }
};

}  // namespace

time_source& time_source::real() {
  static real_time_source source;
  return source;
}

// A fixed, recognisable start (2026-01-01T00:00:00Z) keeps test output reproducible; steady time
// starts well away from zero so "zero" never looks like a valid instant.
manual_time_source::manual_time_source()
    : steady_(steady_time{} + std::chrono::hours(1)),
      system_(system_time{} + std::chrono::seconds(1767225600)) {}

}  // namespace dialer
