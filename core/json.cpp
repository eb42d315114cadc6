#include "core/json.hpp"

#include <cstdint>

namespace dialer {
namespace {

// Length of the valid UTF-8 sequence starting at s[i], or 0 if it is not valid.
std::size_t utf8_sequence_length(std::string_view s, std::size_t i) {
  const auto b = [&](std::size_t k) { return static_cast<unsigned char>(s[k]); };
  const unsigned char c = b(i);
  const std::size_t left = s.size() - i;
  const auto cont = [&](std::size_t k) { return (b(k) & 0xC0) == 0x80; };
  if (c < 0x80) {
    return 1;
  }
  if (c >= 0xC2 && c <= 0xDF) {
    return left >= 2 && cont(i + 1) ? 2 : 0;
  }
  if (c >= 0xE0 && c <= 0xEF) {
    if (left < 3 || !cont(i + 1) || !cont(i + 2)) {
      return 0;
    }
    const unsigned char c1 = b(i + 1);
    if (c == 0xE0 && c1 < 0xA0) {
      return 0;  // overlong
    }
    if (c == 0xED && c1 >= 0xA0) {
      return 0;  // UTF-16 surrogate
    }
    return 3;
  }
  if (c >= 0xF0 && c <= 0xF4) {
    if (left < 4 || !cont(i + 1) || !cont(i + 2) || !cont(i + 3)) {
      return 0;
    }
    const unsigned char c1 = b(i + 1);
    if (c == 0xF0 && c1 < 0x90) {
      return 0;  // overlong
    }
    if (c == 0xF4 && c1 >= 0x90) {
      return 0;  // above U+10FFFF
    }
    return 4;
  }
  return 0;
}

}  // namespace

bool is_valid_utf8(std::string_view text) {
  for (std::size_t i = 0; i < text.size();) {
    const std::size_t n = utf8_sequence_length(text, i);
    if (n == 0) {
      return false;
    }
    i += n;
  }
  return true;
}

void append_json_string(std::string& out, std::string_view text) {
  static constexpr char hex[] = "0123456789abcdef";
  out.reserve(out.size() + text.size() + 2);
  out.push_back('"');
  std::size_t i = 0;
  while (i < text.size()) {
    // Copy the longest run of plain printable ASCII at once: the common case.
    std::size_t j = i;
    while (j < text.size()) {
      const auto c = static_cast<unsigned char>(text[j]);
      if (c < 0x20 || c >= 0x80 || c == '"' || c == '\\') {
        break;
      }
      ++j;
    }
    out.append(text.data() + i, j - i);
    i = j;
    if (i == text.size()) {
      break;
    }
    const auto c = static_cast<unsigned char>(text[i]);
    if (c >= 0x80) {
      const std::size_t n = utf8_sequence_length(text, i);
      if (n == 0) {
        out.append("\\ufffd");
        ++i;
      } else {
        out.append(text.data() + i, n);
        i += n;
      }
      continue;
    }
    switch (c) {
      case '"': out.append("\\\""); break;
      case '\\': out.append("\\\\"); break;
      case '\n': out.append("\\n"); break;
      case '\r': out.append("\\r"); break;
      case '\t': out.append("\\t"); break;
      case '\b': out.append("\\b"); break;
      case '\f': out.append("\\f"); break;
      default:
        out.append("\\u00");
        out.push_back(hex[c >> 4]);
        out.push_back(hex[c & 0xF]);
    }
    ++i;
  }
  out.push_back('"');
}

std::string build_variables_json(std::string_view task_id, std::string_view campaign_id,
                                 const string_pairs& columns, const string_pairs& statics) {
  std::string out;
  out.reserve(64 + task_id.size() + campaign_id.size());
  out.append("{\"taskId\":");
  append_json_string(out, task_id);
  out.append(",\"campaignId\":");
  append_json_string(out, campaign_id);
  for (const auto* list : {&columns, &statics}) {
    for (const auto& [key, value] : *list) {
      out.push_back(',');
      append_json_string(out, key);
      out.push_back(':');
      append_json_string(out, value);
    }
  }
  out.push_back('}');
  return out;
}

}  // namespace dialer
