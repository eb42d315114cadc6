#pragma once
// CSV → validated, normalised rows → the store, in bounded batches. Runs on an ingest thread
// (it blocks on the store), never on the event loop. Every data row ends as a task or a reject.
#include <atomic>
#include <cstdio>
#include <functional>
#include <map>
#include <string>

#include "config/config.hpp"
#include "core/phone.hpp"
#include "core/state_store.hpp"

namespace dialer {

// Reject lines as JSON, one per line: {"campaign","file","line","task_id","reason","detail"}.
// Thread-safe; the file is opened for append.
class reject_log {
 public:
  explicit reject_log(const std::filesystem::path& path);  // throws std::system_error
  reject_log();                                              // writes to stdout (dry run)
  ~reject_log();
  reject_log(const reject_log&) = delete;
  reject_log& operator=(const reject_log&) = delete;
  void write(const std::string& campaign, const std::filesystem::path& file,
             const ingest_reject& reject);
  void flush();

 private:
  std::FILE* file_;
  bool owned_;
};

struct ingest_totals {
  std::int64_t rows_read = 0;
  ingest_result stored;
  std::map<std::string, std::int64_t> rejected_by_reason;  // found by the loader itself
  bool skipped = false;  // the same file was already ingested to the end
};

// Checks that the CSV exists and its header has every mapped column; throws std::runtime_error
// with a message naming the file and the missing column.
void check_campaign_input(const config::campaign_settings& campaign);

// "path|size|mtime_ns": identifies the file version an ingest was run on.
[[nodiscard]] std::string file_fingerprint(const std::filesystem::path& path);

struct ingest_options {
  std::size_t batch_rows = 2048;
  std::function<void(const ingest_result&)> on_batch;  // after each durable batch (ingest thread)
  const std::atomic<bool>* stop = nullptr;             // checked between batches
  bool force = false;  // ingest even when the fingerprint says it is done
};

// Throws std::runtime_error for problems with the file as a whole (missing, bad header).
ingest_totals ingest_campaign(const config::campaign_settings& campaign, state_store& store,
                              const phone_normaliser& phones, reject_log& rejects,
                              const ingest_options& options);

}  // namespace dialer
