#pragma once
// Exponential backoff with full jitter (AWS architecture blog, "Exponential Backoff and Jitter"):
// the delay before retry n is uniform in [0, min(max, base * 2^(n-1))]. Randomness is passed in.
#include <cstdint>

#include "core/time.hpp"

namespace dialer {

// `retry` counts from 1. `random` is a uniformly distributed 64-bit value.
[[nodiscard]] nanoseconds full_jitter_backoff(int retry, milliseconds base, milliseconds max,
                                              std::uint64_t random);

}  // namespace dialer
