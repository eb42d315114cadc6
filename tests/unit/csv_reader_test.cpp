#include "core/csv_reader.hpp"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <cerrno>
#include <fstream>
#include <random>
#include <stdexcept>
#include <string>
#include <system_error>
#include <vector>

namespace dialer {
namespace {

using ::testing::ElementsAre;
using ::testing::IsEmpty;

// A record copied out of the reader, so results outlive the next() call and compare easily.
struct row {
  std::int64_t line = 0;
  std::vector<std::string> fields;
  std::string reject;
  std::string detail;

  bool operator==(const row&) const = default;
};

void PrintTo(const row& r, std::ostream* os) {
  *os << "{line " << r.line << ", ";
  if (!r.reject.empty()) {
    *os << r.reject << ": " << r.detail;
  } else {
    *os << "[";
    for (const auto& f : r.fields) {
      *os << "\"" << f << "\" ";
    }
    *os << "]";
  }
  *os << "}";
}

row good(std::int64_t line, std::vector<std::string> fields) {
  return {line, std::move(fields), "", ""};
}
row bad(std::int64_t line, std::string reason, std::string detail) {
  return {line, {}, std::move(reason), std::move(detail)};
}

std::vector<row> drain(csv_reader& reader) {
  std::vector<row> rows;
  csv_record record;  // reused on purpose: stale fields must not leak from one record to the next
  while (reader.next(record)) {
    row r{record.line, {}, record.reject, record.reject_detail};
    for (std::string_view f : record.fields) {
      r.fields.emplace_back(f);
    }
    if (!record.reject.empty()) {
      EXPECT_THAT(record.fields, IsEmpty()) << "line " << record.line;
    }
    rows.push_back(std::move(r));
  }
  EXPECT_FALSE(reader.next(record)) << "end of input must stay the end";
  return rows;
}

std::vector<row> read_all(std::string_view data, csv_options options = {}) {
  csv_reader reader(data, options);
  return drain(reader);
}

// A file in the test's temporary directory, removed at the end of the test.
class temp_file {
 public:
  explicit temp_file(std::string_view content) {
    static int counter = 0;
    path_ = std::filesystem::path(::testing::TempDir()) /
            ("csv_reader_test_" + std::to_string(::getpid()) + "_" + std::to_string(++counter));
    std::ofstream out(path_, std::ios::binary);
    out.write(content.data(), static_cast<std::streamsize>(content.size()));
    if (!out) {
      throw std::runtime_error("cannot write " + path_.string());
    }
  }
  ~temp_file() { std::filesystem::remove(path_); }
  const std::filesystem::path& path() const { return path_; }

 private:
  std::filesystem::path path_;
};

TEST(csv_reader, reads_header_and_records_with_their_lines) {
  csv_reader reader(std::string_view("id,phone,name\n1,+971501234567,Amal\n2,0501234567,Bo\n"), {});
  EXPECT_THAT(reader.header(), ElementsAre("id", "phone", "name"));
  EXPECT_EQ(reader.column("phone"), 1);
  EXPECT_EQ(reader.column("name"), 2);
  EXPECT_EQ(reader.column("missing"), -1);
  EXPECT_THAT(drain(reader), ElementsAre(good(2, {"1", "+971501234567", "Amal"}),
                                         good(3, {"2", "0501234567", "Bo"})));
}

TEST(csv_reader, header_names_are_kept_exactly) {
  csv_reader reader(std::string_view(" phone ,Phone,phone\n1,2,3\n"), {});
  EXPECT_THAT(reader.header(), ElementsAre(" phone ", "Phone", "phone"));
  EXPECT_EQ(reader.column("phone"), 2);
  EXPECT_EQ(reader.column(" phone "), 0);
}

TEST(csv_reader, quoted_field_holds_delimiter) {
  EXPECT_THAT(read_all("a,b\n\"x,y\",z\n"), ElementsAre(good(2, {"x,y", "z"})));
}

TEST(csv_reader, doubled_quotes_decode_to_one) {
  EXPECT_THAT(read_all("a,b\n\"say \"\"hi\"\"\",\"\"\"\"\n\"\",x\n"),
              ElementsAre(good(2, {"say \"hi\"", "\""}), good(3, {"", "x"})));
}

TEST(csv_reader, lf_inside_quotes_counts_as_a_physical_line) {
  EXPECT_THAT(read_all("a,b\n1,\"line one\nline two\nline three\"\n2,x\n"),
              ElementsAre(good(2, {"1", "line one\nline two\nline three"}), good(5, {"2", "x"})));
}

TEST(csv_reader, crlf_inside_quotes_is_kept_and_counts_once) {
  EXPECT_THAT(read_all("a,b\r\n1,\"x\r\ny\"\r\n2,z\r\n"),
              ElementsAre(good(2, {"1", "x\r\ny"}), good(4, {"2", "z"})));
}

TEST(csv_reader, crlf_line_ends) {
  EXPECT_THAT(read_all("a,b\r\n1,2\r\n3,4\r\n"),
              ElementsAre(good(2, {"1", "2"}), good(3, {"3", "4"})));
}

TEST(csv_reader, lone_cr_line_ends) {
  EXPECT_THAT(read_all("a,b\r1,2\r\"3\",4\r"),
              ElementsAre(good(2, {"1", "2"}), good(3, {"3", "4"})));
}

TEST(csv_reader, last_line_without_newline) {
  EXPECT_THAT(read_all("a,b\n1,2\n3,4"), ElementsAre(good(2, {"1", "2"}), good(3, {"3", "4"})));
  EXPECT_THAT(read_all("a,b\n1,\"2\""), ElementsAre(good(2, {"1", "2"})));
  EXPECT_THAT(read_all("a,b\n1,"), ElementsAre(good(2, {"1", ""})));
}

TEST(csv_reader, empty_fields) {
  EXPECT_THAT(read_all("a,b,c\n,,\n\"\",,\"\"\n"),
              ElementsAre(good(2, {"", "", ""}), good(3, {"", "", ""})));
}

TEST(csv_reader, blank_lines_are_skipped_but_counted) {
  EXPECT_THAT(read_all("\n\na,b\n\n1,2\r\n\r\n\n3,4\n\n"),
              ElementsAre(good(5, {"1", "2"}), good(8, {"3", "4"})));
}

TEST(csv_reader, a_line_of_spaces_is_a_record) {
  EXPECT_THAT(read_all("a\n  \n"), ElementsAre(good(2, {"  "})));
}

TEST(csv_reader, utf8_bom_at_start_is_dropped) {
  csv_reader reader(std::string_view("\xEF\xBB\xBFphone,name\n1,2\n"), {});
  EXPECT_THAT(reader.header(), ElementsAre("phone", "name"));
  EXPECT_EQ(reader.column("phone"), 0);
  EXPECT_THAT(drain(reader), ElementsAre(good(2, {"1", "2"})));
}

TEST(csv_reader, bom_later_in_the_file_is_data) {
  EXPECT_THAT(read_all("a\n\xEF\xBB\xBFx\n"), ElementsAre(good(2, {"\xEF\xBB\xBFx"})));
}

TEST(csv_reader, tab_delimiter) {
  csv_options options;
  options.delimiter = '\t';
  EXPECT_THAT(read_all("id\tphone\n1\t\"a\tb\"\n2\t x,y \n", options),
              ElementsAre(good(2, {"1", "a\tb"}), good(3, {"2", " x,y "})));
}

TEST(csv_reader, semicolon_delimiter) {
  csv_options options;
  options.delimiter = ';';
  EXPECT_THAT(read_all("id;phone\n1;\"+49 30;1\"\n2,5;x\n", options),
              ElementsAre(good(2, {"1", "+49 30;1"}), good(3, {"2,5", "x"})));
}

TEST(csv_reader, delimiter_that_cannot_work_is_refused) {
  for (char c : {'"', '\n', '\r'}) {
    csv_options options;
    options.delimiter = c;
    EXPECT_THROW(csv_reader(std::string_view("a\n"), options), std::invalid_argument);
  }
}

TEST(csv_reader, header_with_duplicate_name_throws) {
  try {
    csv_reader reader(std::string_view("id,phone,id\n1,2,3\n"), {});
    FAIL() << "no exception";
  } catch (const std::runtime_error& e) {
    EXPECT_STREQ(e.what(), "CSV header (line 1): duplicate column 'id' (columns 1 and 3)");
  }
}

TEST(csv_reader, header_with_empty_name_throws) {
  EXPECT_THROW(csv_reader(std::string_view("id,,name\n"), {}), std::runtime_error);
  EXPECT_THROW(csv_reader(std::string_view("id,\"\"\n"), {}), std::runtime_error);
}

TEST(csv_reader, missing_header_throws) {
  EXPECT_THROW(csv_reader(std::string_view(""), {}), std::runtime_error);
  EXPECT_THROW(csv_reader(std::string_view("\n\r\n\n"), {}), std::runtime_error);
  EXPECT_THROW(csv_reader(std::string_view("\xEF\xBB\xBF"), {}), std::runtime_error);
}

TEST(csv_reader, malformed_header_throws_with_its_reason) {
  try {
    csv_reader reader(std::string_view("\n\"id,phone\n1,2\n"), {});
    FAIL() << "no exception";
  } catch (const std::runtime_error& e) {
    EXPECT_THAT(e.what(), ::testing::StartsWith("CSV header (line 2): unterminated_quote"));
  }
  EXPECT_THROW(csv_reader(std::string_view("id,ph\xC0\xAFone\n"), {}), std::runtime_error);
  EXPECT_THROW(csv_reader(std::string_view("id,\"phone\"x\n"), {}), std::runtime_error);
}

TEST(csv_reader, without_header_width_comes_from_the_first_record) {
  csv_options options;
  options.has_header = false;
  csv_reader reader(std::string_view("1,2\n3\n4,5\n"), options);
  EXPECT_THAT(reader.header(), IsEmpty());
  EXPECT_THAT(drain(reader),
              ElementsAre(good(1, {"1", "2"}), bad(2, "ragged_row", "expected 2 fields, found 1"),
                          good(3, {"4", "5"})));
}

TEST(csv_reader, ragged_row_is_rejected_and_reading_continues) {
  EXPECT_THAT(
      read_all("a,b,c\n1,2\n1,2,3,4\n\"x\ny\",2\n5,6,7\n"),
      ElementsAre(bad(2, "ragged_row", "expected 3 fields, found 2"),
                  bad(3, "ragged_row", "expected 3 fields, found 4"),
                  bad(4, "ragged_row", "expected 3 fields, found 2"), good(6, {"5", "6", "7"})));
}

TEST(csv_reader, unterminated_quote_is_reported_once_where_it_started) {
  EXPECT_THAT(
      read_all("a,b\n1,2\n3,\"never closed\n4,5\n6,7\n"),
      ElementsAre(good(2, {"1", "2"}),
                  bad(3, "unterminated_quote", "field 2 (b) opens a quote that is never closed")));
}

TEST(csv_reader, text_after_closing_quote_is_bad_quote) {
  EXPECT_THAT(read_all("a,b\n\"x\"y,2\n3,4\n"),
              ElementsAre(bad(2, "bad_quote", "text after the closing quote of field 1 (a)"),
                          good(3, {"3", "4"})));
  // A space after the quote is text too: the strict reading.
  EXPECT_THAT(read_all("a,b\n1,\"x\" \n3,4\n"),
              ElementsAre(bad(2, "bad_quote", "text after the closing quote of field 2 (b)"),
                          good(3, {"3", "4"})));
}

TEST(csv_reader, quote_inside_unquoted_field_is_bad_quote) {
  EXPECT_THAT(
      read_all("a,b\n1,5'11\"\n3,4\n x\"y\",2\n5,6"),
      ElementsAre(bad(2, "bad_quote", "quote inside unquoted field 2 (b)"), good(3, {"3", "4"}),
                  bad(4, "bad_quote", "quote inside unquoted field 1 (a)"), good(5, {"5", "6"})));
}

TEST(csv_reader, bad_quote_after_multiline_field_resumes_on_the_right_line) {
  // The quoted field is well formed over lines 2-3; the error is on line 3, so line 4 is next.
  EXPECT_THAT(read_all("a,b\n1,\"x\ny\"z,\"w\n4,5\n6,7\n"),
              ElementsAre(bad(2, "bad_quote", "text after the closing quote of field 2 (b)"),
                          good(4, {"4", "5"}), good(5, {"6", "7"})));
}

TEST(csv_reader, invalid_utf8_is_rejected_per_record) {
  EXPECT_THAT(
      read_all("a,b\n"
               "1,caf\xC3\xA9 \xF0\x9F\x93\x9E \xD8\xB9\xD9\x84\xD9\x8A\n"  // é, emoji, Arabic
               "2,\xC0\xAF\n"                                               // overlong '/'
               "3,x\xE0\x80\xAF\n"                                          // overlong, 3 bytes
               "4,\xED\xA0\x80\n"                                           // surrogate D800
               "5,\xF4\x90\x80\x80\n"                                       // U+110000
               "6,\xE2\x82\n"                                               // truncated
               "\"7\xBF\",x\n"                                              // stray continuation
               "8,\xFF\n"
               "9,\xEF\xBF\xBF\xF4\x8F\xBF\xBF\n"),  // U+FFFF and U+10FFFF are well formed
      ElementsAre(good(2, {"1", "caf\xC3\xA9 \xF0\x9F\x93\x9E \xD8\xB9\xD9\x84\xD9\x8A"}),
                  bad(3, "invalid_utf8", "field 2 (b) is not valid UTF-8 at byte 1"),
                  bad(4, "invalid_utf8", "field 2 (b) is not valid UTF-8 at byte 2"),
                  bad(5, "invalid_utf8", "field 2 (b) is not valid UTF-8 at byte 1"),
                  bad(6, "invalid_utf8", "field 2 (b) is not valid UTF-8 at byte 1"),
                  bad(7, "invalid_utf8", "field 2 (b) is not valid UTF-8 at byte 1"),
                  bad(8, "invalid_utf8", "field 1 (a) is not valid UTF-8 at byte 2"),
                  bad(9, "invalid_utf8", "field 2 (b) is not valid UTF-8 at byte 1"),
                  good(10, {"9", "\xEF\xBF\xBF\xF4\x8F\xBF\xBF"})));
}

TEST(csv_reader, invalid_utf8_after_a_long_ascii_run_is_found) {
  const std::string ascii(37, 'x');
  EXPECT_THAT(read_all("a\n" + ascii + "\x80" + ascii + "\n"),
              ElementsAre(bad(2, "invalid_utf8", "field 1 (a) is not valid UTF-8 at byte 38")));
}

TEST(csv_reader, field_too_large_unquoted) {
  csv_options options;
  options.max_field_bytes = 4;
  EXPECT_THAT(
      read_all("a,b\n1,1234\n2,12345\n3,4\n", options),
      ElementsAre(good(2, {"1", "1234"}), bad(3, "field_too_large", "field 2 (b) exceeds 4 bytes"),
                  good(4, {"3", "4"})));
}

TEST(csv_reader, field_too_large_quoted_counts_decoded_bytes_and_skips_its_lines) {
  csv_options options;
  options.max_field_bytes = 4;
  EXPECT_THAT(
      read_all("a,b\n\"12\"\"4\",x\n\"1\n3\n5\n7\",\"x\ny\"\n3,4\n", options),
      ElementsAre(good(2, {"12\"4", "x"}), bad(3, "field_too_large", "field 1 (a) exceeds 4 bytes"),
                  good(8, {"3", "4"})));
}

TEST(csv_reader, field_too_large_then_bad_quote_ends_with_the_line) {
  csv_options options;
  options.max_field_bytes = 2;
  EXPECT_THAT(
      read_all("a,b\n12345,x\"y\n1,2\n", options),
      ElementsAre(bad(2, "field_too_large", "field 1 (a) exceeds 2 bytes"), good(3, {"1", "2"})));
}

TEST(csv_reader, too_many_fields) {
  csv_options options;
  options.max_fields = 3;
  EXPECT_THAT(read_all("a,b,c\n1,2,3,4,\"5\n6\"\n7,8,9\n1,2,\n", options),
              ElementsAre(bad(2, "too_many_fields", "more than 3 fields"), good(4, {"7", "8", "9"}),
                          good(5, {"1", "2", ""})));
  EXPECT_THAT(
      read_all("a,b,c\n1,2,3,\n4,5,6\n", options),
      ElementsAre(bad(2, "too_many_fields", "more than 3 fields"), good(3, {"4", "5", "6"})));
}

TEST(csv_reader, unterminated_quote_wins_over_an_earlier_fault) {
  csv_options options;
  options.max_field_bytes = 3;
  EXPECT_THAT(read_all("a,b\n1,2\n12345,\"open\n3,4\n", options),
              ElementsAre(good(2, {"1", "2"}),
                          bad(3, "unterminated_quote",
                              "a quoted field is never closed before the end of the file")));
}

TEST(csv_reader, every_row_ends_as_a_record_or_a_reject) {
  csv_options options;
  options.max_field_bytes = 8;
  const auto rows = read_all(
      "id,phone\n"
      "1,a\n"
      "2\n"
      "3,\"b\"x\n"
      "4,\xC0\x80\n"
      "5,123456789\n"
      "6,\"ok\"\n",
      options);
  ASSERT_EQ(rows.size(), 6u);
  for (std::size_t i = 0; i < rows.size(); ++i) {
    EXPECT_EQ(rows[i].line, static_cast<std::int64_t>(i) + 2);
  }
  EXPECT_EQ(rows[5], good(7, {"6", "ok"}));
}

// The same inputs through the file reader with tiny buffers put every byte on a buffer boundary
// somewhere, including a CR whose LF is not read yet and a quote whose partner is not.
TEST(csv_reader, file_reader_with_any_buffer_size_matches_memory_reader) {
  csv_options limits;
  limits.max_field_bytes = 16;
  limits.max_fields = 4;
  const std::vector<std::string> inputs = {
      "a,b\n1,2\n3,4",
      "\xEF\xBB\xBFid,\"na\"\"me\"\r\n1,\"x\r\ny\"\r\n\r\n2,\"\"\"\"\r\n3,z\r",
      "a,b\n\"x\"y,2\n1,5'11\"\n3,\"multi\nline\"\n\n\n4,5\r6,7\r\n",
      "a,b\n1,0123456789abcdefg\n2,\"0123456789\n\"\"bcdefg\"\n3,4\n",
      "a,b\n1,2,3,4,5,\"6\n7\"\n8,9\n\"unterminated,\n10,11\n",
      "a,b\n1,\xE2\x82\xAC\n2,\xE2\x82\n\r\r\n3,\"\xF0\x9F\x98\x80\"\n",
      "a;b\n1;2\n",
  };
  for (const std::string& input : inputs) {
    const auto expected = read_all(input, limits);
    temp_file file(input);
    for (std::size_t size = 1; size <= input.size() + 1; ++size) {
      csv_options options = limits;
      options.buffer_bytes = size;
      csv_reader reader(file.path(), options);
      EXPECT_EQ(drain(reader), expected) << "buffer " << size << " input " << input;
    }
  }
}

// Random inputs over the bytes that matter, a fixed seed: the file reader with random small
// buffers must agree with the memory reader, and lines must only go forward.
TEST(csv_reader, random_inputs_agree_across_buffer_sizes) {
  std::mt19937 rng(20240611);
  const char alphabet[] = {'a', ',', ',', '"', '"', '\n', '\r', ' ', '\xC3', '\xA9', '\xFF'};
  for (int iteration = 0; iteration < 300; ++iteration) {
    std::string input = "a,b\n";
    const int length = static_cast<int>(rng() % 80);
    for (int i = 0; i < length; ++i) {
      input += alphabet[rng() % sizeof alphabet];
    }
    csv_options options;
    options.max_field_bytes = 1 + rng() % 8;
    options.max_fields = 2 + rng() % 3;
    const auto expected = read_all(input, options);
    for (std::size_t i = 1; i < expected.size(); ++i) {
      ASSERT_GT(expected[i].line, expected[i - 1].line) << input;
    }
    temp_file file(input);
    for (int k = 0; k < 3; ++k) {
      options.buffer_bytes = 1 + rng() % 24;
      csv_reader reader(file.path(), options);
      ASSERT_EQ(drain(reader), expected) << "buffer " << options.buffer_bytes << " input " << input;
    }
  }
}

// Without quotes a record is a physical line, so a plain split is an independent oracle for
// which line every record comes from and for the first fault found in it.
TEST(csv_reader, random_quote_free_lines_match_a_plain_split) {
  std::mt19937 rng(7);
  const std::vector<std::string> pieces = {
      "x", "yy", "12345", ",", ",", "\n", "\r\n", "\r", "\xC3\xA9", "\xE2\x82", "\xF0\x9F\x98\x80",
      " "};
  csv_options options;
  options.max_field_bytes = 6;
  options.max_fields = 4;
  for (int iteration = 0; iteration < 300; ++iteration) {
    std::string body;
    const int count = static_cast<int>(rng() % 40);
    for (int i = 0; i < count; ++i) {
      body += pieces[rng() % pieces.size()];
    }
    std::vector<row> expected;
    std::int64_t line = 2;
    std::size_t start = 0;
    while (start < body.size()) {
      std::size_t stop = body.find_first_of("\r\n", start);
      const bool last = stop == std::string::npos;
      stop = last ? body.size() : stop;
      const std::string text = body.substr(start, stop - start);
      if (!text.empty()) {
        std::vector<std::string> fields;
        std::size_t from = 0;
        for (;;) {
          const std::size_t comma = text.find(',', from);
          fields.push_back(text.substr(from, comma == std::string::npos ? comma : comma - from));
          if (comma == std::string::npos) {
            break;
          }
          from = comma + 1;
        }
        row r = good(line, fields);
        for (std::size_t i = 0; i < fields.size(); ++i) {
          if (i == options.max_fields) {
            r = bad(line, "too_many_fields", "more than 4 fields");
            break;
          }
          if (fields[i].size() > options.max_field_bytes) {
            r = bad(line, "field_too_large",
                    "field " + std::to_string(i + 1) + (i < 2 ? i == 0 ? " (a)" : " (b)" : "") +
                        " exceeds 6 bytes");
            break;
          }
        }
        if (r.reject.empty() && fields.size() != 2) {
          r = bad(line, "ragged_row", "expected 2 fields, found " + std::to_string(fields.size()));
        }
        if (r.reject.empty()) {
          for (std::size_t i = 0; i < fields.size(); ++i) {
            if (fields[i].find("\xE2\x82") != std::string::npos) {
              const std::size_t at = fields[i].find("\xE2\x82");
              r = bad(line, "invalid_utf8",
                      "field " + std::to_string(i + 1) + (i == 0 ? " (a)" : " (b)") +
                          " is not valid UTF-8 at byte " + std::to_string(at + 1));
              break;
            }
          }
        }
        expected.push_back(r);
      }
      if (last) {
        break;
      }
      start = stop + (body.compare(stop, 2, "\r\n") == 0 ? 2 : 1);
      ++line;
    }
    EXPECT_EQ(read_all("a,b\n" + body, options), expected) << body;
  }
}

TEST(csv_reader, file_constructor_reads_the_file) {
  temp_file file("\xEF\xBB\xBFphone\tname\r\n+971501234567\t\"A\tB\"\r\n");
  csv_options options;
  options.delimiter = '\t';
  csv_reader reader(file.path(), options);
  EXPECT_THAT(reader.header(), ElementsAre("phone", "name"));
  EXPECT_THAT(drain(reader), ElementsAre(good(2, {"+971501234567", "A\tB"})));
}

TEST(csv_reader, missing_file_throws_system_error) {
  const auto path = std::filesystem::path(::testing::TempDir()) / "csv_reader_test_no_such_file";
  try {
    csv_reader reader(path, {});
    FAIL() << "no exception";
  } catch (const std::system_error& e) {
    EXPECT_EQ(e.code().value(), ENOENT);
    EXPECT_THAT(e.what(), ::testing::HasSubstr(path.string()));
  }
}

TEST(csv_reader, directory_throws_system_error) {
  EXPECT_THROW(csv_reader(std::filesystem::path(::testing::TempDir()), {}), std::system_error);
}

std::string generated_csv(int rows) {
  std::string data = "task_id,phone,first_name,last_name,city,notes\n";
  for (int i = 0; i < rows; ++i) {
    const std::string n = std::to_string(i);
    data += "T" + n + ",+9715" + std::to_string(10000000 + i) + ",Amal,\"O'Neil, Jr\",Dubai,";
    data += (i % 3 == 0) ? "\"said \"\"call later\"\"\"\n" : "plain note " + n + "\n";
  }
  return data;
}

TEST(csv_reader, large_file_is_read_with_bounded_memory) {
  constexpr int rows = 200'000;
  temp_file file(generated_csv(rows));
  ASSERT_GT(std::filesystem::file_size(file.path()), 10u << 20);
  csv_reader reader(file.path(), {});
  csv_record record;
  std::int64_t count = 0;
  std::size_t peak = 0;
  while (reader.next(record)) {
    ASSERT_TRUE(record.reject.empty()) << record.line << " " << record.reject_detail;
    ASSERT_EQ(record.line, count + 2);
    ASSERT_EQ(record.fields[0], "T" + std::to_string(count));
    ASSERT_EQ(record.fields[3], "O'Neil, Jr");
    if (count % 3 == 0) {
      ASSERT_EQ(record.fields[5], "said \"call later\"");
    }
    peak = std::max(peak, reader.buffered_bytes_for_test());
    ++count;
  }
  EXPECT_EQ(count, rows);
  EXPECT_LE(peak, 256u * 1024 + 4096);
}

TEST(csv_reader, huge_field_is_skipped_without_buffering_it) {
  std::string data = "a,b\n1,";
  data.append(32u << 20, 'x');  // 32 MiB unquoted
  data += "\n2,\"";
  data.append(32u << 20, 'y');  // 32 MiB quoted, with line breaks inside
  for (int i = 0; i < 1000; ++i) {
    data += "\n";
  }
  data += "\"\n3,4\n";
  temp_file file(data);
  csv_options options;
  options.buffer_bytes = 64 * 1024;
  options.max_field_bytes = 16 * 1024;
  csv_reader reader(file.path(), options);
  EXPECT_THAT(drain(reader),
              ElementsAre(bad(2, "field_too_large", "field 2 (b) exceeds 16384 bytes"),
                          bad(3, "field_too_large", "field 2 (b) exceeds 16384 bytes"),
                          good(1004, {"3", "4"})));
  EXPECT_LE(reader.buffered_bytes_for_test(), 64u * 1024 + 4096);
}

TEST(csv_reader, unterminated_quote_at_the_top_of_a_large_file_keeps_memory_bounded) {
  // Quote-free rows after the open quote: every one of them is swallowed into that field.
  std::string data = "a,b\n1,\"open\n";
  for (int i = 0; i < 500'000; ++i) {
    data += std::to_string(i) + ",+971501234567\n";
  }
  temp_file file(data);
  csv_options options;
  options.max_field_bytes = 4096;
  csv_reader reader(file.path(), options);
  EXPECT_THAT(drain(reader), ElementsAre(bad(2, "unterminated_quote",
                                             "a quoted field is never closed before the end of "
                                             "the file")));
  EXPECT_LE(reader.buffered_bytes_for_test(), 256u * 1024 + 4096);
}

TEST(csv_reader, record_larger_than_the_buffer_is_read_whole) {
  std::string big(50'000, 'z');
  std::string data = "a,b,c\n1,\"" + big + "\n" + big + "\"," + big + "\n2,3,4\n";
  temp_file file(data);
  csv_options options;
  options.buffer_bytes = 1024;
  options.max_field_bytes = 200'000;
  csv_reader reader(file.path(), options);
  EXPECT_THAT(drain(reader),
              ElementsAre(good(2, {"1", big + "\n" + big, big}), good(4, {"2", "3", "4"})));
  // The buffer grew for the 150 kB record, by doubling: under twice its size.
  EXPECT_LE(reader.buffered_bytes_for_test(), 2u * 150'010 + 4096);
}

}  // namespace
}  // namespace dialer
