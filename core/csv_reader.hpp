#pragma once
// A streaming RFC 4180 reader. Memory is bounded by the buffer and the largest accepted record,
// never by file size. A malformed record becomes a reject (line + reason) and reading goes on
// with the next record. Not thread-safe; one reader per file.
//
// The grammar is RFC 4180 read strictly, with the usual relaxations for real exports:
// - A record ends at LF, CRLF or a lone CR; each of these also ends one physical line, inside
//   quotes too, so `line` stays right after multi-line fields. The last record needs no newline.
// - A field is either entirely quoted or contains no quote at all. A quote inside an unquoted
//   field (`5'11"`, ` "x"` with a leading space) and any character after a closing quote other
//   than the delimiter or a line end are "bad_quote"; that record is skipped up to the end of the
//   physical line where the error was found, and reading resumes on the next line.
// - A UTF-8 byte-order mark at the very start is dropped. Blank lines (nothing between two line
//   ends) are skipped; a line holding only spaces is a record with one field.
// - Field content is returned exactly: no trimming, doubled quotes ("") decoded to one.
// Memory: the read buffer grows only while one record does not fit in it, so it stays under
// max(buffer_bytes, 2 × the largest record within the field limits), whatever the file size. A
// field over max_field_bytes and fields past max_fields are skipped while scanning, unbuffered.
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace dialer {

struct csv_options {
  char delimiter = ',';  // any byte but '"', CR or LF (throws std::invalid_argument otherwise)
  bool has_header = true;
  std::size_t max_field_bytes = 64 * 1024;  // decoded content, quotes excluded
  std::size_t max_fields = 1024;            // at least 1
  std::size_t buffer_bytes = 256 * 1024;    // initial read buffer of the file reader (min 4)
};

// Stable reason classes (also used as metric labels and in reject lines).
//   "ragged_row"          field count differs from the header
//   "unterminated_quote"  a quoted field runs to end of file
//   "bad_quote"           a character after a closing quote other than delimiter/newline
//   "invalid_utf8"        the record is not valid UTF-8
//   "field_too_large"     a field exceeds max_field_bytes
//   "too_many_fields"
// When a record has several faults the first one found while scanning wins, except that a
// quoted field open at end of input always reports "unterminated_quote" (it swallowed the rest
// of the file, and the operator must know that). Without a header, "ragged_row" compares with
// the width of the first record.
struct csv_record {
  std::int64_t line = 0;  // physical line where the record starts (1-based)
  // Valid until the next call to next(). Empty when `reject` is set.
  std::vector<std::string_view> fields;
  std::string reject;         // empty for a good record
  std::string reject_detail;  // human text, e.g. "expected 5 fields, found 4"
};

class csv_reader {
 public:
  // Throws std::system_error when the file cannot be opened or read. Reads and validates the
  // header (when has_header) at construction; a missing or malformed header, or one with an
  // empty or duplicate column name, throws std::runtime_error.
  csv_reader(const std::filesystem::path& path, csv_options options);
  // Reads from memory (tests, benchmarks). `data` must outlive the reader.
  csv_reader(std::string_view data, csv_options options);
  ~csv_reader();
  csv_reader(const csv_reader&) = delete;
  csv_reader& operator=(const csv_reader&) = delete;

  [[nodiscard]] const std::vector<std::string>& header() const { return header_; }
  // Index of a header column, or -1.
  [[nodiscard]] int column(std::string_view name) const;
  // Fills `out` with the next record; false at end of input. Blank lines are skipped. Reusing
  // one `out` across calls avoids allocation. Throws std::system_error on a read error: a
  // failing disk must not look like the end of the campaign.
  [[nodiscard]] bool next(csv_record& out);

  // Bytes the reader holds for buffering (read buffer + decoding scratch + field table).
  [[nodiscard]] std::size_t buffered_bytes_for_test() const;

 private:
  void read_header();

  struct impl;
  std::unique_ptr<impl> impl_;
  std::vector<std::string> header_;
};

}  // namespace dialer
