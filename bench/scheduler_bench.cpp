// Pacing decisions per second. The daemon asks the trunk's and the campaign's bucket once per
// call start, so these are far from the budget (~30 µs of dialer CPU per call); they guard
// against a regression in the exact 128-bit arithmetic, the denied path above all (it divides).
#include <benchmark/benchmark.h>

#include <chrono>
#include <cstdint>

#include "core/time.hpp"
#include "scheduler/token_bucket.hpp"

namespace dialer {
namespace {

using std::chrono::seconds;

// Every request is granted: 1,000,000/s with a burst of 1,000, and `now` advancing by 1 µs a
// decision, as under the end-to-end benchmark's configuration.
void BM_token_bucket_try_acquire_granted(benchmark::State& state) {
  token_bucket bucket(1'000'000, seconds(1), 1'000);
  steady_time now{seconds(1'000)};
  std::int64_t granted = 0;
  for (auto _ : state) {
    now += nanoseconds(1'000);
    const auto d = bucket.try_acquire(now);
    granted += d.granted ? 1 : 0;
    benchmark::DoNotOptimize(d);
  }
  if (granted != static_cast<std::int64_t>(state.iterations())) {
    state.SkipWithError("a request was denied");
  }
  state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations()));
}
BENCHMARK(BM_token_bucket_try_acquire_granted);

// Every request is denied and computes the instant of the next token (a 128-bit division): a
// rate that does not divide a second (3/s), the bucket emptied, `now` standing still.
void BM_token_bucket_try_acquire_denied(benchmark::State& state) {
  token_bucket bucket(3, seconds(1), 5);
  steady_time now{seconds(1'000)};
  for (int i = 0; i < 5; ++i) {
    (void)bucket.try_acquire(now);
  }
  std::int64_t denied = 0;
  for (auto _ : state) {
    benchmark::DoNotOptimize(now);
    const auto d = bucket.try_acquire(now);
    denied += d.granted ? 0 : 1;
    benchmark::DoNotOptimize(d);
  }
  if (denied != static_cast<std::int64_t>(state.iterations())) {
    state.SkipWithError("a request was granted");
  }
  state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations()));
}
BENCHMARK(BM_token_bucket_try_acquire_denied);

// Half granted, half denied: the bucket is asked twice per token interval (500/s, 1 ms apart).
void BM_token_bucket_try_acquire_mixed(benchmark::State& state) {
  token_bucket bucket(500, seconds(1), 1);
  steady_time now{seconds(1'000)};
  std::int64_t granted = 0;
  for (auto _ : state) {
    now += nanoseconds(1'000'000);
    const auto d = bucket.try_acquire(now);
    granted += d.granted ? 1 : 0;
    benchmark::DoNotOptimize(d);
  }
  state.counters["granted_fraction"] =
      static_cast<double>(granted) / static_cast<double>(state.iterations());
  state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations()));
}
BENCHMARK(BM_token_bucket_try_acquire_mixed);

// How many tokens are there now (the engine sizes a batch of claims with it), on a bucket that
// is half spent.
void BM_token_bucket_available(benchmark::State& state) {
  token_bucket bucket(1'000, seconds(1), 100);
  steady_time now{seconds(1'000)};
  for (int i = 0; i < 50; ++i) {
    (void)bucket.try_acquire(now);
  }
  std::int64_t total = 0;
  for (auto _ : state) {
    benchmark::DoNotOptimize(now);
    total += bucket.available(now);
  }
  if (total != 50 * static_cast<std::int64_t>(state.iterations())) {
    state.SkipWithError("unexpected token count");
  }
  state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations()));
}
BENCHMARK(BM_token_bucket_available);

}  // namespace
}  // namespace dialer
