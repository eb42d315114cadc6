#include "core/csv_reader.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstring>
#include <stdexcept>
#include <system_error>
#include <unordered_map>

#ifdef __SSE2__
#include <emmintrin.h>
#endif

namespace dialer {
namespace {

constexpr std::size_t no_scratch = static_cast<std::size_t>(-1);
constexpr std::size_t min_buffer_bytes = 4;  // the BOM check needs 3 bytes in the first fill

// Offset of the first byte that does not belong to well-formed UTF-8 (Unicode table 3-7:
// no overlongs, no surrogates, nothing above U+10FFFF), or npos.
std::size_t find_invalid_utf8(std::string_view text) {
  const auto* s = reinterpret_cast<const unsigned char*>(text.data());
  const std::size_t n = text.size();
  std::size_t i = 0;
  while (i < n) {
    // CRM exports are mostly ASCII: skip it a word at a time.
    while (i + 8 <= n) {
      std::uint64_t word;
      std::memcpy(&word, s + i, 8);
      if ((word & 0x8080808080808080ull) != 0) {
        break;
      }
      i += 8;
    }
    if (i >= n) {
      break;
    }
    const unsigned char c = s[i];
    if (c < 0x80) {
      ++i;
      continue;
    }
    std::size_t len = 0;
    unsigned char lo = 0x80;
    unsigned char hi = 0xBF;
    if (c >= 0xC2 && c <= 0xDF) {
      len = 2;
    } else if (c >= 0xE0 && c <= 0xEF) {
      len = 3;
      if (c == 0xE0) {
        lo = 0xA0;  // overlong below U+0800
      } else if (c == 0xED) {
        hi = 0x9F;  // U+D800..U+DFFF are surrogates
      }
    } else if (c >= 0xF0 && c <= 0xF4) {
      len = 4;
      if (c == 0xF0) {
        lo = 0x90;  // overlong below U+10000
      } else if (c == 0xF4) {
        hi = 0x8F;  // above U+10FFFF
      }
    } else {
      return i;  // stray continuation byte, C0/C1 overlong lead, or F5..FF
    }
    if (i + len > n || s[i + 1] < lo || s[i + 1] > hi) {
      return i;
    }
    for (std::size_t k = 2; k < len; ++k) {
      if (s[i + k] < 0x80 || s[i + k] > 0xBF) {
        return i;
      }
    }
    i += len;
  }
  return std::string_view::npos;
}

// Physical line breaks in [b, e): every CR, and every LF not preceded by a CR (so CRLF is one).
// `prev_cr` carries the state across calls and is updated.
std::int64_t count_breaks(const char* b, const char* e, bool& prev_cr) {
  std::int64_t n = 0;
  for (const char* p = b; p < e; ++p) {
    if (*p == '\r') {
      ++n;
      prev_cr = true;
    } else {
      if (*p == '\n' && !prev_cr) {
        ++n;
      }
      prev_cr = false;
    }
  }
  return n;
}

std::string field_label(std::size_t index, const std::vector<std::string>& header) {
  std::string label = "field " + std::to_string(index + 1);
  if (index < header.size()) {
    label += " (" + header[index] + ")";
  }
  return label;
}

}  // namespace

struct csv_reader::impl {
  // Where the byte-at-a-time scanner of a skipped record stands.
  enum class skip_at { field_start, unquoted, quoted, quote_seen, to_eol, cr };
  enum class outcome { record, need_more, skip };

  // A parsed field: a view into the window, or (data == nullptr) a range of `scratch`, which may
  // still reallocate while the record is parsed.
  struct field_ref {
    const char* data;
    std::size_t offset;
    std::size_t size;
  };

  csv_options opt;
  const std::vector<std::string>& header;
  int fd = -1;
  std::vector<char> buf;
  const char* base = nullptr;  // window start: buf.data(), or the caller's memory
  std::size_t pos = 0;         // first unconsumed byte of the window
  std::size_t end = 0;         // end of the valid bytes of the window
  bool eof = false;            // no more bytes beyond `end`
  std::int64_t line = 1;       // physical line of the byte at `pos`
  std::int64_t record_line = 0;
  std::size_t expected_fields = 0;  // 0 until known
  std::string scratch;
  std::vector<field_ref> refs;
  std::array<bool, 256> special{};

  bool skipping = false;
  skip_at skip_state = skip_at::field_start;
  bool skip_prev_cr = false;
  std::string skip_reason;
  std::string skip_detail;

  impl(const csv_options& o, const std::vector<std::string>& h) : opt(o), header(h) {
    if (opt.delimiter == '"' || opt.delimiter == '\r' || opt.delimiter == '\n') {
      throw std::invalid_argument("csv delimiter cannot be a quote, CR or LF");
    }
    if (opt.max_fields == 0) {
      throw std::invalid_argument("csv max_fields must be at least 1");
    }
    for (char c : {opt.delimiter, '"', '\r', '\n'}) {
      special[static_cast<unsigned char>(c)] = true;
    }
  }

  ~impl() {
    if (fd >= 0) {
      ::close(fd);
    }
  }

  void skip_bom() {
    if (end - pos >= 3 && std::memcmp(base + pos, "\xEF\xBB\xBF", 3) == 0) {
      pos += 3;
    }
  }

  // First delimiter, quote, CR or LF in [p, e), or e.
  const char* find_special(const char* p, const char* e) const {
#ifdef __SSE2__
    const __m128i delim = _mm_set1_epi8(opt.delimiter);
    const __m128i quote = _mm_set1_epi8('"');
    const __m128i lf = _mm_set1_epi8('\n');
    const __m128i cr = _mm_set1_epi8('\r');
    while (e - p >= 16) {
      const __m128i v = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p));
      const __m128i hit =
          _mm_or_si128(_mm_or_si128(_mm_cmpeq_epi8(v, delim), _mm_cmpeq_epi8(v, quote)),
                       _mm_or_si128(_mm_cmpeq_epi8(v, lf), _mm_cmpeq_epi8(v, cr)));
      const int mask = _mm_movemask_epi8(hit);
      if (mask != 0) {
        return p + __builtin_ctz(static_cast<unsigned>(mask));
      }
      p += 16;
    }
#endif
    while (p < e && !special[static_cast<unsigned char>(*p)]) {
      ++p;
    }
    return p;
  }

  // Keeps [keep, end) at the front of the buffer and reads until the buffer is full or the file
  // ends. Reading until full (not one read(2)) matters: a parse restarts from the record start
  // after every refill, so short reads from a pipe would make a long record quadratic.
  void refill(std::size_t keep) {
    if (fd < 0 || eof) {
      eof = true;
      return;
    }
    const std::size_t live = end - keep;
    if (keep > 0 && live > 0) {
      std::memmove(buf.data(), buf.data() + keep, live);
    }
    pos -= keep;
    end = live;
    if (end == buf.size()) {
      buf.resize(buf.size() * 2);  // one record fills the whole buffer
    }
    while (end < buf.size()) {
      const ssize_t n = ::read(fd, buf.data() + end, buf.size() - end);
      if (n > 0) {
        end += static_cast<std::size_t>(n);
      } else if (n == 0) {
        eof = true;
        break;
      } else if (errno != EINTR) {
        throw std::system_error(errno, std::generic_category(), "reading CSV");
      }
    }
    base = buf.data();
  }

  void fill_record(csv_record& out) {
    out.line = record_line;
    out.reject.clear();
    out.reject_detail.clear();
    out.fields.clear();
    for (const field_ref& r : refs) {
      out.fields.emplace_back(r.data != nullptr ? r.data : scratch.data() + r.offset, r.size);
    }
    if (expected_fields == 0) {
      expected_fields = refs.size();
    }
    if (out.fields.size() != expected_fields) {
      reject(out, "ragged_row",
             "expected " + std::to_string(expected_fields) + " fields, found " +
                 std::to_string(out.fields.size()));
      return;
    }
    for (std::size_t i = 0; i < out.fields.size(); ++i) {
      const std::size_t bad = find_invalid_utf8(out.fields[i]);
      if (bad != std::string_view::npos) {
        reject(out, "invalid_utf8",
               field_label(i, header) + " is not valid UTF-8 at byte " + std::to_string(bad + 1));
        return;
      }
    }
  }

  void reject(csv_record& out, const char* reason, std::string detail) const {
    out.line = record_line;
    out.fields.clear();
    out.reject = reason;
    out.reject_detail = std::move(detail);
  }

  outcome begin_skip(const char* from, std::int64_t breaks, skip_at state, const char* reason,
                     std::string detail) {
    pos = static_cast<std::size_t>(from - base);
    line += breaks;
    skipping = true;
    skip_state = state;
    skip_prev_cr = false;  // `from` is a field start or a quote/text byte, never after a CR
    skip_reason = reason;
    skip_detail = std::move(detail);
    return outcome::skip;
  }

  std::string too_large_detail(std::size_t index) const {
    return field_label(index, header) + " exceeds " + std::to_string(opt.max_field_bytes) +
           " bytes";
  }

  // Ends a record whose terminator (if any) starts at p. Returns false when a CR ends the
  // window and the byte after it, which may be its LF, is not read yet.
  bool finish_record(const char* p, const char* e, std::int64_t breaks) {
    if (p < e) {
      ++breaks;
      if (*p == '\r') {
        if (p + 1 == e && !eof) {
          return false;
        }
        if (p + 1 < e && p[1] == '\n') {
          ++p;
        }
      }
      ++p;
    }
    pos = static_cast<std::size_t>(p - base);
    line += breaks;
    return true;
  }

  // Parses the record at pos (not a blank line) from the window. Nothing is committed on
  // need_more, so the caller may refill and call again.
  outcome parse_record(csv_record& out) {
    const char* p = base + pos;
    const char* const e = base + end;
    const std::size_t max_bytes = opt.max_field_bytes;
    refs.clear();
    scratch.clear();
    std::int64_t breaks = 0;
    for (;;) {
      const char* const field_begin = p;
      const std::size_t index = refs.size();
      if (index == opt.max_fields) {
        return begin_skip(field_begin, breaks, skip_at::field_start, "too_many_fields",
                          "more than " + std::to_string(opt.max_fields) + " fields");
      }
      if (p < e && *p == '"') {
        ++p;
        const char* segment = p;
        std::size_t scratch_offset = no_scratch;
        std::size_t decoded = 0;
        bool prev_cr = false;
        std::int64_t field_breaks = 0;
        for (;;) {
          const auto* q = static_cast<const char*>(std::memchr(p, '"', e - p));
          const char* const stop = q != nullptr ? q : e;
          if (decoded + static_cast<std::size_t>(stop - segment) > max_bytes) {
            return begin_skip(field_begin, breaks, skip_at::field_start, "field_too_large",
                              too_large_detail(index));
          }
          if (q == nullptr) {
            if (!eof) {
              return outcome::need_more;
            }
            field_breaks += count_breaks(p, e, prev_cr);
            pos = end;
            line += breaks + field_breaks;
            reject(out, "unterminated_quote",
                   field_label(index, header) + " opens a quote that is never closed");
            return outcome::record;
          }
          field_breaks += count_breaks(p, q, prev_cr);
          if (q + 1 == e && !eof) {
            return outcome::need_more;  // "" or a closing quote: the next byte decides
          }
          if (q + 1 < e && q[1] == '"') {
            if (scratch_offset == no_scratch) {
              scratch_offset = scratch.size();
            }
            scratch.append(segment, q + 1);
            decoded += static_cast<std::size_t>(q + 1 - segment);
            p = q + 2;
            segment = p;
            prev_cr = false;
            continue;
          }
          if (scratch_offset == no_scratch) {
            refs.push_back({segment, 0, static_cast<std::size_t>(q - segment)});
          } else {
            scratch.append(segment, q);
            refs.push_back({nullptr, scratch_offset, scratch.size() - scratch_offset});
          }
          p = q + 1;
          break;
        }
        breaks += field_breaks;
        if (p < e && *p == opt.delimiter) {
          ++p;
          continue;
        }
        if (p < e && *p != '\n' && *p != '\r') {
          return begin_skip(p, breaks, skip_at::to_eol, "bad_quote",
                            "text after the closing quote of " + field_label(index, header));
        }
        if (!finish_record(p, e, breaks)) {
          return outcome::need_more;
        }
        fill_record(out);
        return outcome::record;
      }

      const char* const q = find_special(p, e);
      if (static_cast<std::size_t>(q - p) > max_bytes) {
        return begin_skip(field_begin, breaks, skip_at::field_start, "field_too_large",
                          too_large_detail(index));
      }
      if (q == e && !eof) {
        return outcome::need_more;
      }
      refs.push_back({p, 0, static_cast<std::size_t>(q - p)});
      if (q < e && *q == opt.delimiter) {
        p = q + 1;
        continue;
      }
      if (q < e && *q == '"') {
        return begin_skip(q + 1, breaks, skip_at::to_eol, "bad_quote",
                          "quote inside unquoted " + field_label(index, header));
      }
      if (!finish_record(q, e, breaks)) {
        return outcome::need_more;
      }
      fill_record(out);
      return outcome::record;
    }
  }

  // Consumes the rest of a rejected record from the window without keeping it. Returns true
  // once the record's end has been consumed.
  bool run_skip() {
    const char* p = base + pos;
    const char* const e = base + end;
    bool done = false;
    while (p < e && !done) {
      switch (skip_state) {
        case skip_at::field_start:
          if (*p == '"') {
            ++p;
            skip_state = skip_at::quoted;
            skip_prev_cr = false;
          } else {
            skip_state = skip_at::unquoted;
          }
          break;
        case skip_at::unquoted: {
          p = find_special(p, e);
          if (p == e) {
            break;
          }
          const char c = *p++;
          if (c == opt.delimiter) {
            skip_state = skip_at::field_start;
          } else if (c == '"') {
            skip_state = skip_at::to_eol;
          } else {
            ++line;
            skip_state = c == '\r' ? skip_at::cr : skip_at::to_eol;
            done = c == '\n';
          }
          break;
        }
        case skip_at::quoted: {
          const auto* q = static_cast<const char*>(std::memchr(p, '"', e - p));
          const char* const stop = q != nullptr ? q : e;
          line += count_breaks(p, stop, skip_prev_cr);
          p = stop;
          if (q != nullptr) {
            ++p;
            skip_state = skip_at::quote_seen;
          }
          break;
        }
        case skip_at::quote_seen:
          if (*p == '"') {
            ++p;
            skip_state = skip_at::quoted;
            skip_prev_cr = false;
          } else if (*p == opt.delimiter) {
            ++p;
            skip_state = skip_at::field_start;
          } else {
            // A line end, or text after the quote (a bad quote inside a record that is already
            // rejected): either way the record ends with this physical line.
            skip_state = skip_at::to_eol;
          }
          break;
        case skip_at::to_eol:
          while (p < e && *p != '\n' && *p != '\r') {
            ++p;
          }
          if (p < e) {
            ++line;
            done = *p == '\n';
            skip_state = skip_at::cr;
            ++p;
          }
          break;
        case skip_at::cr:
          if (*p == '\n') {
            ++p;
          }
          done = true;
          break;
      }
    }
    pos = static_cast<std::size_t>(p - base);
    if (!done && eof && pos == end) {
      if (skip_state == skip_at::quoted) {
        skip_reason = "unterminated_quote";
        skip_detail = "a quoted field is never closed before the end of the file";
      }
      done = true;
    }
    return done;
  }

  // Skips blank lines. Returns false when the window ends first (refill needed, or end).
  bool skip_blank_lines() {
    while (pos < end) {
      const char c = base[pos];
      if (c == '\n') {
        ++pos;
      } else if (c == '\r') {
        if (pos + 1 == end && !eof) {
          return false;
        }
        pos += pos + 1 < end && base[pos + 1] == '\n' ? 2 : 1;
      } else {
        return true;
      }
      ++line;
    }
    return false;
  }

  bool next(csv_record& out) {
    for (;;) {
      if (skipping) {
        if (!run_skip()) {
          refill(pos);
          continue;
        }
        skipping = false;
        reject(out, skip_reason.c_str(), std::move(skip_detail));
        return true;
      }
      if (!skip_blank_lines()) {
        if (eof && pos == end) {
          return false;
        }
        refill(pos);
        continue;
      }
      record_line = line;
      switch (parse_record(out)) {
        case outcome::record:
          return true;
        case outcome::need_more:
          refill(pos);
          break;
        case outcome::skip:
          break;
      }
    }
  }
};

csv_reader::csv_reader(const std::filesystem::path& path, csv_options options)
    : impl_(std::make_unique<impl>(options, header_)) {
  impl_->fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (impl_->fd < 0) {
    throw std::system_error(errno, std::generic_category(), "cannot open CSV " + path.string());
  }
  ::posix_fadvise(impl_->fd, 0, 0, POSIX_FADV_SEQUENTIAL);
  impl_->buf.resize(std::max(options.buffer_bytes, min_buffer_bytes));
  impl_->refill(0);
  impl_->skip_bom();
  read_header();
}

csv_reader::csv_reader(std::string_view data, csv_options options)
    : impl_(std::make_unique<impl>(options, header_)) {
  impl_->base = data.data();
  impl_->end = data.size();
  impl_->eof = true;
  impl_->skip_bom();
  read_header();
}

csv_reader::~csv_reader() = default;

void csv_reader::read_header() {
  if (!impl_->opt.has_header) {
    return;
  }
  csv_record record;
  if (!impl_->next(record)) {
    throw std::runtime_error("CSV has no header row");
  }
  const std::string where = "CSV header (line " + std::to_string(record.line) + "): ";
  if (!record.reject.empty()) {
    throw std::runtime_error(where + record.reject + ": " + record.reject_detail);
  }
  std::unordered_map<std::string_view, std::size_t> seen;
  for (std::size_t i = 0; i < record.fields.size(); ++i) {
    const std::string_view name = record.fields[i];
    if (name.empty()) {
      throw std::runtime_error(where + "column " + std::to_string(i + 1) + " has an empty name");
    }
    const auto [it, fresh] = seen.emplace(name, i);
    if (!fresh) {
      throw std::runtime_error(where + "duplicate column '" + std::string(name) + "' (columns " +
                               std::to_string(it->second + 1) + " and " + std::to_string(i + 1) +
                               ")");
    }
  }
  header_.assign(record.fields.begin(), record.fields.end());
}

int csv_reader::column(std::string_view name) const {
  const auto it = std::find(header_.begin(), header_.end(), name);
  return it == header_.end() ? -1 : static_cast<int>(it - header_.begin());
}

bool csv_reader::next(csv_record& out) {
  return impl_->next(out);
}

std::size_t csv_reader::buffered_bytes_for_test() const {
  return impl_->buf.capacity() + impl_->scratch.capacity() +
         impl_->refs.capacity() * sizeof(impl::field_ref);
}

}  // namespace dialer
