#pragma once
// A streaming RFC 4180 reader. Memory is bounded by the buffer and the largest accepted record,
// never by file size. A malformed record becomes a reject (line + reason) and reading goes on
// with the next record. Not thread-safe; one reader per file.
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace dialer {

struct csv_options {
  char delimiter = ',';
  bool has_header = true;
  std::size_t max_field_bytes = 64 * 1024;
  std::size_t max_fields = 1024;
};

// Stable reason classes (also used as metric labels and in reject lines).
//   "ragged_row"          field count differs from the header
//   "unterminated_quote"  a quoted field runs to end of file
//   "bad_quote"           a character after a closing quote other than delimiter/newline
//   "invalid_utf8"        the record is not valid UTF-8
//   "field_too_large"     a field exceeds max_field_bytes
//   "too_many_fields"
struct csv_record {
  std::int64_t line = 0;  // physical line where the record starts (1-based)
  // Valid until the next call to next(). Empty when `reject` is set.
  std::vector<std::string_view> fields;
  std::string reject;         // empty for a good record
  std::string reject_detail;  // human text, e.g. "expected 5 fields, found 4"
};

class csv_reader {
 public:
  // Throws std::system_error when the file cannot be opened. Reads and validates the header
  // (when has_header) at construction; a malformed header throws std::runtime_error.
  csv_reader(const std::filesystem::path& path, csv_options options);
  // Reads from memory (tests, benchmarks). `data` must outlive the reader.
  csv_reader(std::string_view data, csv_options options);
  ~csv_reader();
  csv_reader(const csv_reader&) = delete;
  csv_reader& operator=(const csv_reader&) = delete;

  [[nodiscard]] const std::vector<std::string>& header() const { return header_; }
  // Index of a header column, or -1.
  [[nodiscard]] int column(std::string_view name) const;
  // Fills `out` with the next record; false at end of input. Blank lines are skipped.
  [[nodiscard]] bool next(csv_record& out);

 private:
  struct impl;
  std::unique_ptr<impl> impl_;
  std::vector<std::string> header_;
};

}  // namespace dialer
