#pragma once
// Phone numbers to E.164 with libphonenumber. Thread-safe (libphonenumber's util is).
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
  // unknown name.
  explicit phone_normaliser(const std::vector<std::string>& allowed_types);
  // True when `region` is a region libphonenumber knows ("AE", "US", …).
  [[nodiscard]] static bool is_known_region(std::string_view region);

  // National numbers are read in `default_region`; "+…" and "00…" numbers in their own.
  [[nodiscard]] result<std::string, phone_reject> normalise(std::string_view raw,
                                                            std::string_view default_region) const;

 private:
  unsigned allowed_mask_ = 0;
};

}  // namespace dialer
