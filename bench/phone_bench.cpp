#include <benchmark/benchmark.h>

#include <array>
#include <string_view>

#include "core/phone.hpp"

namespace {

struct sample {
  std::string_view raw;
  std::string_view region;
};

// A mix as CSV exports carry them: national and international forms, formatting, a few rejects.
constexpr std::array<sample, 8> samples = {{
    {"050 123 4567", "AE"},
    {"+971 55 123 4567", "AE"},
    {"00971501234567", "AE"},
    {"(212) 234-5678", "US"},
    {"+44 20 7946 0018", "AE"},
    {"07400 123456", "GB"},
    {"+44 909 876 5432", "GB"},  // premium rate: refused
    {"12345", "AE"},             // too short: refused
}};

void BM_phone_normalise(benchmark::State& state) {
  const dialer::phone_normaliser phones({"fixed_line", "mobile", "fixed_line_or_mobile"});
  std::size_t i = 0;
  for (auto _ : state) {
    const sample& s = samples[i++ % samples.size()];
    auto result = phones.normalise(s.raw, s.region);
    benchmark::DoNotOptimize(result);
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_phone_normalise);

}  // namespace
