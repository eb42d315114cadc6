#pragma once
// Phone numbers to E.164 with libphonenumber. Thread-safe (libphonenumber's util is).
//
// What normalise() accepts, strictly, because a mis-read number is a call to a stranger:
// - digits, with spaces, tabs, '-', '.', '/', '(' and ')' between them; Unicode dashes, no-break
//   spaces and invisible direction marks (common in pasted and Arabic-locale exports) count as
//   separators; Arabic-Indic and extended Arabic-Indic digits count as digits;
// - one '+' before the first digit, or a leading "00", for an international number; the default
//   region's own international prefix (011 in NANP, 0011 in AU, …) works as well;
// - anything else is refused: letters as "letters in number" (libphonenumber would turn
//   1-800-FLOWERS into digits), any other character, an extension, or a second '+'.
#include <string>
#include <string_view>
#include <vector>

#include "core/result.hpp"

namespace dialer {

struct phone_reject {
  std::string reason;  // "invalid_number" | "number_type_not_allowed" | "empty_number"
  std::string detail;  // e.g. "not a valid number for region AE", "premium_rate not allowed"
};

class phone_normaliser {
 public:
  // `allowed_types`: libphonenumber number types in lower case ("mobile", "fixed_line",
  // "fixed_line_or_mobile", "toll_free", "premium_rate", "shared_cost", "voip",
  // "personal_number", "pager", "uan", "voicemail", "unknown"). Throws std::invalid_argument on an
  // unknown name. A "fixed_line_or_mobile" number (all of NANP, for one) is also accepted when
  // both "fixed_line" and "mobile" are listed, since it is then certainly one of them.
  explicit phone_normaliser(const std::vector<std::string>& allowed_types);
  // True when `region` is a region libphonenumber knows ("AE", "US", …; upper case).
  [[nodiscard]] static bool is_known_region(std::string_view region);

  // National numbers are read in `default_region`; "+…" and "00…" numbers in their own.
  // Returns the number in E.164 ("+971501234567").
  [[nodiscard]] result<std::string, phone_reject> normalise(std::string_view raw,
                                                            std::string_view default_region) const;

 private:
  unsigned allowed_mask_ = 0;
};

}  // namespace dialer
