#include "core/phone.hpp"

#include <phonenumbers/phonenumberutil.h>

#include <array>
#include <cstdint>
#include <cstdio>
#include <set>
#include <stdexcept>

namespace dialer {
namespace {

using i18n::phonenumbers::PhoneNumber;
using i18n::phonenumbers::PhoneNumberUtil;

// type_name() indexes by PhoneNumberUtil::PhoneNumberType.
static_assert(PhoneNumberUtil::FIXED_LINE == 0 && PhoneNumberUtil::MOBILE == 1 &&
              PhoneNumberUtil::FIXED_LINE_OR_MOBILE == 2 && PhoneNumberUtil::TOLL_FREE == 3 &&
              PhoneNumberUtil::PREMIUM_RATE == 4 && PhoneNumberUtil::SHARED_COST == 5 &&
              PhoneNumberUtil::VOIP == 6 && PhoneNumberUtil::PERSONAL_NUMBER == 7 &&
              PhoneNumberUtil::PAGER == 8 && PhoneNumberUtil::UAN == 9 &&
              PhoneNumberUtil::VOICEMAIL == 10 && PhoneNumberUtil::UNKNOWN == 11);

std::string_view type_name(int type) {
  static constexpr std::array<std::string_view, 12> names = {
      "fixed_line",  "mobile", "fixed_line_or_mobile", "toll_free", "premium_rate",
      "shared_cost", "voip",   "personal_number",      "pager",     "uan",
      "voicemail",   "unknown"};
  return type >= 0 && type < static_cast<int>(names.size()) ? names[type] : "unknown";
}

constexpr unsigned bit(PhoneNumberUtil::PhoneNumberType type) {
  return 1u << type;
}

// E.164 allows 15 digits; an international prefix and a national prefix or carrier code add a few
// more. Anything longer is garbage, and refusing it early keeps libphonenumber's work bounded.
constexpr std::size_t max_digits = 24;

phone_reject invalid(std::string detail) {
  return {"invalid_number", std::move(detail)};
}

struct cleaned {
  std::string text;   // "+digits" or "digits"
  bool empty = true;  // nothing but white space
};

enum class char_class { digit, plus, space, separator, letter, other };

// Characters that may sit between digits without changing the number.
char_class classify_code_point(char32_t cp, char& digit) {
  if (cp >= U'0' && cp <= U'9') {
    digit = static_cast<char>(cp);
    return char_class::digit;
  }
  if ((cp >= 0x0660 && cp <= 0x0669) || (cp >= 0x06F0 && cp <= 0x06F9)) {
    digit = static_cast<char>('0' + (cp & 0xF));  // Arabic-Indic and extended Arabic-Indic
    return char_class::digit;
  }
  switch (cp) {
    case U'+':
      return char_class::plus;
    case U' ':
    case U'\t':
    case U'\r':
    case U'\n':
    case U'\v':
    case U'\f':
    case 0x00A0:  // no-break space
    case 0x202F:  // narrow no-break space
    case 0x2060:  // word joiner
    case 0x3000:  // ideographic space
    case 0xFEFF:  // zero-width no-break space
      return char_class::space;
    case U'-':
    case U'.':
    case U'/':
    case U'(':
    case U')':
    case 0x2212:  // minus sign
      return char_class::separator;
    default:
      break;
  }
  if ((cp >= 0x2000 && cp <= 0x200F) || (cp >= 0x202A && cp <= 0x202E) ||
      (cp >= 0x2066 && cp <= 0x2069)) {
    return char_class::space;  // spaces, zero-width and bidirectional marks
  }
  if (cp >= 0x2010 && cp <= 0x2015) {
    return char_class::separator;  // hyphens and dashes
  }
  if ((cp >= U'A' && cp <= U'Z') || (cp >= U'a' && cp <= U'z')) {
    return char_class::letter;
  }
  return char_class::other;
}

// Decodes one UTF-8 code point at s[i] and advances i; 0xFFFFFFFF for malformed input.
char32_t decode_utf8(std::string_view s, std::size_t& i) {
  const auto c = static_cast<unsigned char>(s[i]);
  if (c < 0x80) {
    ++i;
    return c;
  }
  const std::size_t len = c > 0xF4 ? 0 : c >= 0xF0 ? 4 : c >= 0xE0 ? 3 : c >= 0xC2 ? 2 : 0;
  if (len == 0 || i + len > s.size()) {
    ++i;
    return 0xFFFFFFFF;
  }
  char32_t cp = c & (0x7F >> len);
  for (std::size_t k = 1; k < len; ++k) {
    const auto cc = static_cast<unsigned char>(s[i + k]);
    if ((cc & 0xC0) != 0x80) {
      ++i;
      return 0xFFFFFFFF;
    }
    cp = (cp << 6) | (cc & 0x3F);
  }
  i += len;
  // An overlong form could smuggle in an ASCII digit or '+', so only the shortest form counts.
  static constexpr char32_t min_for_len[] = {0, 0, 0x80, 0x800, 0x10000};
  if (cp < min_for_len[len] || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) {
    return 0xFFFFFFFF;
  }
  return cp;
}

std::string describe(char32_t cp) {
  if (cp >= 0x21 && cp < 0x7F) {
    return std::string("unexpected character '") + static_cast<char>(cp) + "'";
  }
  if (cp == 0xFFFFFFFF) {
    return "malformed UTF-8";
  }
  char hex[16];
  std::snprintf(hex, sizeof hex, "U+%04X", static_cast<unsigned>(cp));
  return std::string("unexpected character ") + hex;
}

// Reduces the raw text to an optional '+' and ASCII digits, refusing anything that is not plainly
// formatting. libphonenumber would be more lenient (it converts letters, extracts a number from
// surrounding text, reads extensions), which is how a wrong number gets dialed.
result<cleaned, phone_reject> clean(std::string_view raw) {
  cleaned out;
  out.text.reserve(raw.size() < 32 ? raw.size() : 32);
  std::size_t digits = 0;
  for (std::size_t i = 0; i < raw.size();) {
    const char32_t cp = decode_utf8(raw, i);
    char digit = 0;
    switch (classify_code_point(cp, digit)) {
      case char_class::digit:
        if (++digits > max_digits) {
          return failure{invalid("too long")};
        }
        out.text.push_back(digit);
        out.empty = false;
        break;
      case char_class::plus:
        if (!out.text.empty()) {
          return failure{invalid("'+' is allowed only before the first digit")};
        }
        out.text.push_back('+');
        out.empty = false;
        break;
      case char_class::space:
        break;
      case char_class::separator:
        out.empty = false;
        break;
      case char_class::letter:
        return failure{invalid("letters in number")};
      case char_class::other:
        return failure{invalid(describe(cp))};
    }
  }
  if (!out.empty && digits == 0) {
    return failure{invalid("no digits")};
  }
  return out;
}

std::string parse_error_detail(PhoneNumberUtil::ErrorType error, bool international,
                               std::string_view region) {
  switch (error) {
    case PhoneNumberUtil::INVALID_COUNTRY_CODE_ERROR:
      if (international) {
        return "invalid country code";
      }
      return "unknown region '" + std::string(region) + "' for a national number";
    case PhoneNumberUtil::NOT_A_NUMBER:
      return "not a number";
    case PhoneNumberUtil::TOO_SHORT_AFTER_IDD:
      return "too short after the international prefix";
    case PhoneNumberUtil::TOO_SHORT_NSN:
      return "too short";
    case PhoneNumberUtil::TOO_LONG_NSN:
      return "too long";
    case PhoneNumberUtil::NO_PARSING_ERROR:
      break;
  }
  return "parse error";
}

}  // namespace

phone_normaliser::phone_normaliser(const std::vector<std::string>& allowed_types) {
  for (const std::string& name : allowed_types) {
    bool found = false;
    for (int type = PhoneNumberUtil::FIXED_LINE; type <= PhoneNumberUtil::UNKNOWN; ++type) {
      if (type_name(type) == name) {
        allowed_mask_ |= 1u << type;
        found = true;
      }
    }
    if (!found) {
      throw std::invalid_argument("unknown phone number type '" + name + "'");
    }
  }
  // Both halves allowed means the ambiguous type is allowed whichever it really is.
  const unsigned both = bit(PhoneNumberUtil::FIXED_LINE) | bit(PhoneNumberUtil::MOBILE);
  if ((allowed_mask_ & both) == both) {
    allowed_mask_ |= bit(PhoneNumberUtil::FIXED_LINE_OR_MOBILE);
  }
}

bool phone_normaliser::is_known_region(std::string_view region) {
  static const std::set<std::string, std::less<>> regions = [] {
    std::set<std::string> supported;
    PhoneNumberUtil::GetInstance()->GetSupportedRegions(&supported);
    return std::set<std::string, std::less<>>(supported.begin(), supported.end());
  }();
  return regions.find(region) != regions.end();
}

result<std::string, phone_reject> phone_normaliser::normalise(
    std::string_view raw, std::string_view default_region) const {
  auto cleaned_number = clean(raw);
  if (!cleaned_number) {
    return failure{cleaned_number.error()};
  }
  const std::string& text = cleaned_number.value().text;
  if (cleaned_number.value().empty) {
    return failure{phone_reject{"empty_number", "no number given"}};
  }

  const PhoneNumberUtil& util = *PhoneNumberUtil::GetInstance();
  const std::string region(default_region);
  PhoneNumber number;
  bool international = text.front() == '+';
  PhoneNumberUtil::ErrorType error;
  if (!international && text.starts_with("00")) {
    // "00" is the ITU international prefix and what most exports use; where the region's own
    // prefix differs (011 in NANP), libphonenumber would read "00…" as a national number.
    error = util.ParseAndKeepRawInput(text, region, &number);
    if (error != PhoneNumberUtil::NO_PARSING_ERROR ||
        number.country_code_source() != PhoneNumber::FROM_NUMBER_WITH_IDD) {
      number.Clear();
      error = util.Parse("+" + text.substr(2), region, &number);
    }
    international = true;
  } else {
    error = util.Parse(text, region, &number);
  }
  if (error != PhoneNumberUtil::NO_PARSING_ERROR) {
    return failure{invalid(parse_error_detail(error, international, default_region))};
  }
  if (number.has_extension()) {
    return failure{invalid("extensions cannot be dialed")};
  }

  // GetNumberType and IsValidNumber run the same region lookup and pattern match, and a type
  // other than UNKNOWN implies validity; asking for the type first halves the cost of a good
  // number. IsValidNumber still decides for UNKNOWN (regions with incomplete metadata).
  const PhoneNumberUtil::PhoneNumberType type = util.GetNumberType(number);
  if (type == PhoneNumberUtil::UNKNOWN && !util.IsValidNumber(number)) {
    std::string number_region;
    util.GetRegionCodeForCountryCode(number.country_code(), &number_region);
    switch (util.IsPossibleNumberWithReason(number)) {
      case PhoneNumberUtil::TOO_SHORT:
        return failure{invalid("too short")};
      case PhoneNumberUtil::TOO_LONG:
        return failure{invalid("too long")};
      case PhoneNumberUtil::INVALID_COUNTRY_CODE:
        return failure{invalid("invalid country code")};
      case PhoneNumberUtil::INVALID_LENGTH:
        return failure{invalid("invalid length for region " + number_region)};
      case PhoneNumberUtil::IS_POSSIBLE_LOCAL_ONLY:
        return failure{invalid("local number without area code for region " + number_region)};
      case PhoneNumberUtil::IS_POSSIBLE:
        break;
    }
    return failure{invalid("not a valid number for region " + number_region)};
  }

  if ((allowed_mask_ & bit(type)) == 0) {
    return failure{
        phone_reject{"number_type_not_allowed", std::string(type_name(type)) + " not allowed"}};
  }
  std::string e164;
  util.Format(number, PhoneNumberUtil::E164, &e164);
  return e164;
}

}  // namespace dialer
