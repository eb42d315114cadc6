#include <benchmark/benchmark.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <string>

#include "core/csv_reader.hpp"

namespace {

// A typical CRM export: 6 columns, ~80 bytes a row, every fourth row with quoted fields (an
// embedded delimiter and doubled quotes), as spreadsheets write them.
const std::string& crm_export() {
  static const std::string data = [] {
    std::string s = "task_id,phone,first_name,last_name,city,notes\n";
    for (int i = 0; i < 100'000; ++i) {
      const std::string n = std::to_string(i);
      s += "crm-" + n + ",+97150" + std::to_string(1'000'000 + i) + ",Fatima,Al Mansouri,";
      s += (i % 4 == 0) ? "\"Dubai, Marina\",\"asked to \"\"call after 5\"\"\"\n"
                        : "Abu Dhabi,renewal due next month\n";
    }
    return s;
  }();
  return data;
}

void drain(dialer::csv_reader& reader, benchmark::State& state) {
  dialer::csv_record record;
  std::int64_t rows = 0;
  while (reader.next(record)) {
    if (!record.reject.empty()) {
      state.SkipWithError("unexpected reject");
      return;
    }
    benchmark::DoNotOptimize(record.fields.data());
    ++rows;
  }
  if (rows != 100'000) {
    state.SkipWithError("wrong row count");
  }
}

void BM_csv_rows(benchmark::State& state) {
  const std::string& data = crm_export();
  for (auto _ : state) {
    dialer::csv_reader reader(std::string_view(data), {});
    drain(reader, state);
  }
  state.SetItemsProcessed(state.iterations() * 100'000);
  state.SetBytesProcessed(state.iterations() * static_cast<std::int64_t>(data.size()));
}
BENCHMARK(BM_csv_rows)->Unit(benchmark::kMillisecond);

// The same rows through read(2) and the 256 KiB buffer (file in the page cache).
void BM_csv_rows_file(benchmark::State& state) {
  const std::string& data = crm_export();
  const auto path =
      std::filesystem::temp_directory_path() / ("csv_bench_" + std::to_string(::getpid()) + ".csv");
  std::ofstream(path, std::ios::binary) << data;
  for (auto _ : state) {
    dialer::csv_reader reader(path, {});
    drain(reader, state);
  }
  std::filesystem::remove(path);
  state.SetItemsProcessed(state.iterations() * 100'000);
  state.SetBytesProcessed(state.iterations() * static_cast<std::int64_t>(data.size()));
}
BENCHMARK(BM_csv_rows_file)->Unit(benchmark::kMillisecond);

}  // namespace
