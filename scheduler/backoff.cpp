#include "scheduler/backoff.hpp"

#include <algorithm>

namespace dialer {

nanoseconds full_jitter_backoff(int retry, milliseconds base, milliseconds max,
                                std::uint64_t random) {
  const std::int64_t cap_ns = nanoseconds(max).count();
  std::int64_t ceiling = nanoseconds(base).count();
  for (int i = 1; i < retry && ceiling < cap_ns; ++i) {
    ceiling *= 2;
  }
  ceiling = std::clamp<std::int64_t>(ceiling, 0, cap_ns);
  return nanoseconds(static_cast<std::int64_t>(random % (static_cast<std::uint64_t>(ceiling) + 1)));
}

}  // namespace dialer
