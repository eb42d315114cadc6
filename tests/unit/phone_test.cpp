#include "core/phone.hpp"

#include <gtest/gtest.h>

#include <atomic>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

namespace dialer {
namespace {

// The daemon's default (config::campaign_settings::allowed_number_types).
const std::vector<std::string> default_types = {"fixed_line", "mobile", "fixed_line_or_mobile"};

std::string e164(const phone_normaliser& phones, std::string_view raw, std::string_view region) {
  auto r = phones.normalise(raw, region);
  if (!r) {
    return "reject " + r.error().reason + ": " + r.error().detail;
  }
  return r.value();
}

std::string e164(std::string_view raw, std::string_view region) {
  static const phone_normaliser phones(default_types);
  return e164(phones, raw, region);
}

// Every number below was checked against libphonenumber 8.12's metadata (Debian 12).
TEST(phone_normaliser, ae_mobile_in_national_and_international_forms) {
  for (std::string_view raw :
       {"+971501234567", "+971 50 123 4567", "050 123 4567", "050-123-4567", "(050) 123.4567",
        "0501234567", "00971501234567", "00 971 50 123 4567", "  +971 50 123 4567\t"}) {
    EXPECT_EQ(e164(raw, "AE"), "+971501234567") << raw;
  }
}

TEST(phone_normaliser, international_numbers_ignore_the_default_region) {
  EXPECT_EQ(e164("+44 20 7946 0018", "AE"), "+442079460018");
  EXPECT_EQ(e164("+1 212 234 5678", "AE"), "+12122345678");
  EXPECT_EQ(e164("+971501234567", "US"), "+971501234567");
}

TEST(phone_normaliser, double_zero_is_international_even_where_the_prefix_differs) {
  // NANP dials out with 011 and libphonenumber would read 00… as a national number there.
  EXPECT_EQ(e164("00 971 50 123 4567", "US"), "+971501234567");
  EXPECT_EQ(e164("011 971 50 123 4567", "US"), "+971501234567");
  // Australia dials out with 0011.
  EXPECT_EQ(e164("0011 44 20 7946 0018", "AU"), "+442079460018");
  EXPECT_EQ(e164("00 44 20 7946 0018", "AU"), "+442079460018");
}

TEST(phone_normaliser, gb_numbers) {
  EXPECT_EQ(e164("020 7946 0018", "GB"), "+442079460018");  // London fixed line
  EXPECT_EQ(e164("07400 123456", "GB"), "+447400123456");   // mobile
  EXPECT_EQ(e164("+44 (0)20 7946 0018", "GB"), "+442079460018");
}

TEST(phone_normaliser, us_numbers_are_fixed_line_or_mobile) {
  for (std::string_view raw :
       {"(212) 234-5678", "212.234.5678", "212-234-5678", "+1 212 234 5678", "1 212 234 5678"}) {
    EXPECT_EQ(e164(raw, "US"), "+12122345678") << raw;
  }
}

TEST(phone_normaliser, other_regions) {
  EXPECT_EQ(e164("030/1234567", "DE"), "+49301234567");
  EXPECT_EQ(e164("01512 3456789", "DE"), "+4915123456789");
  EXPECT_EQ(e164("06 12 34 56 78", "FR"), "+33612345678");
  EXPECT_EQ(e164("0412 345 678", "AU"), "+61412345678");
}

TEST(phone_normaliser, pasted_spaces_dashes_and_direction_marks_are_formatting) {
  EXPECT_EQ(e164("\u200E+971\u00A050\u2011123\u20134567\u200F", "AE"), "+971501234567");
  EXPECT_EQ(e164("\uFEFF050 123 4567", "AE"), "+971501234567");
}

TEST(phone_normaliser, arabic_indic_digits) {
  EXPECT_EQ(e164("\u0660\u0665\u0660\u0661\u0662\u0663\u0664\u0665\u0666\u0667", "AE"),
            "+971501234567");
  EXPECT_EQ(e164("+\u06F9\u06F7\u06F1\u06F5\u06F0\u06F1\u06F2\u06F3\u06F4\u06F5\u06F6\u06F7", "AE"),
            "+971501234567");
}

TEST(phone_normaliser, empty_number) {
  for (std::string_view raw : {"", "   ", "\t", " \u00A0 "}) {
    EXPECT_EQ(e164(raw, "AE"), "reject empty_number: no number given") << raw;
  }
}

TEST(phone_normaliser, invalid_numbers_say_why) {
  EXPECT_EQ(e164("12", "AE"), "reject invalid_number: too short");
  EXPECT_EQ(e164("+971 50", "AE"), "reject invalid_number: too short");
  EXPECT_EQ(e164("+971 50 123 4567 8901", "AE"), "reject invalid_number: too long");
  EXPECT_EQ(e164("+971 12 345 6789", "AE"),
            "reject invalid_number: not a valid number for region AE");
  EXPECT_EQ(e164("07700 900123", "GB"), "reject invalid_number: not a valid number for region GB");
  EXPECT_EQ(e164("+999 123456", "AE"), "reject invalid_number: invalid country code");
  EXPECT_EQ(e164("0501234567", "ZZ"),
            "reject invalid_number: unknown region 'ZZ' for a national number");
  EXPECT_EQ(e164("--", "AE"), "reject invalid_number: no digits");
  EXPECT_EQ(e164("+", "AE"), "reject invalid_number: no digits");
  EXPECT_EQ(e164("0000 0000 0000 0000 0000 0000 0", "AE"), "reject invalid_number: too long");
}

TEST(phone_normaliser, letters_are_refused_not_converted) {
  // libphonenumber alone turns these into +18003569377, a valid toll-free number.
  EXPECT_EQ(e164("1-800-FLOWERS", "US"), "reject invalid_number: letters in number");
  EXPECT_EQ(e164("+1 212 234 5678 ext. 12", "US"), "reject invalid_number: letters in number");
  EXPECT_EQ(e164("O50 123 4567", "AE"), "reject invalid_number: letters in number");
  EXPECT_EQ(e164("tel:+971501234567", "AE"), "reject invalid_number: letters in number");
}

TEST(phone_normaliser, other_characters_are_refused) {
  EXPECT_EQ(e164("+1 212 234 5678 #12", "US"), "reject invalid_number: unexpected character '#'");
  EXPECT_EQ(e164("050 123 4567, 050 765 4321", "AE"),
            "reject invalid_number: unexpected character ','");
  EXPECT_EQ(e164("+971+501234567", "AE"),
            "reject invalid_number: '+' is allowed only before the first digit");
  EXPECT_EQ(e164("971+501234567", "AE"),
            "reject invalid_number: '+' is allowed only before the first digit");
  EXPECT_EQ(e164("\u0416050 123 4567", "AE"), "reject invalid_number: unexpected character U+0416");
  // An overlong two-byte '0' must not sneak a digit in.
  EXPECT_EQ(e164("05\xC0\xB0"
                 "1234567",
                 "AE"),
            "reject invalid_number: malformed UTF-8");
  EXPECT_EQ(e164("0501234567\xFF", "AE"), "reject invalid_number: malformed UTF-8");
}

TEST(phone_normaliser, premium_rate_refused_by_default_and_allowed_when_listed) {
  EXPECT_EQ(e164("+44 909 876 5432", "AE"),
            "reject number_type_not_allowed: premium_rate not allowed");
  EXPECT_EQ(e164("09098765432", "GB"), "reject number_type_not_allowed: premium_rate not allowed");
  EXPECT_EQ(e164("+1 900 234 5678", "US"),
            "reject number_type_not_allowed: premium_rate not allowed");
  const phone_normaliser premium({"premium_rate"});
  EXPECT_EQ(e164(premium, "09098765432", "GB"), "+449098765432");
  EXPECT_EQ(e164(premium, "07400 123456", "GB"),
            "reject number_type_not_allowed: mobile not allowed");
}

TEST(phone_normaliser, toll_free_and_uan_follow_the_list) {
  EXPECT_EQ(e164("0800 123 4567", "GB"), "reject number_type_not_allowed: toll_free not allowed");
  EXPECT_EQ(e164("+971 600 540000", "AE"), "reject number_type_not_allowed: uan not allowed");
  const phone_normaliser with_toll_free({"mobile", "toll_free"});
  EXPECT_EQ(e164(with_toll_free, "0800 123 4567", "GB"), "+448001234567");
  EXPECT_EQ(e164(with_toll_free, "800 123", "AE"), "+971800123");
}

TEST(phone_normaliser, fixed_line_or_mobile_needs_itself_or_both_halves) {
  const phone_normaliser mobile_only({"mobile"});
  EXPECT_EQ(e164(mobile_only, "+1 212 234 5678", "US"),
            "reject number_type_not_allowed: fixed_line_or_mobile not allowed");
  EXPECT_EQ(e164(mobile_only, "050 123 4567", "AE"), "+971501234567");
  EXPECT_EQ(e164(mobile_only, "020 7946 0018", "GB"),
            "reject number_type_not_allowed: fixed_line not allowed");
  const phone_normaliser both({"mobile", "fixed_line"});
  EXPECT_EQ(e164(both, "+1 212 234 5678", "US"), "+12122345678");
  const phone_normaliser ambiguous_only({"fixed_line_or_mobile"});
  EXPECT_EQ(e164(ambiguous_only, "+1 212 234 5678", "US"), "+12122345678");
  EXPECT_EQ(e164(ambiguous_only, "050 123 4567", "AE"),
            "reject number_type_not_allowed: mobile not allowed");
}

TEST(phone_normaliser, voip_type_name) {
  EXPECT_EQ(e164("+44 56 1234 5678", "GB"), "reject number_type_not_allowed: voip not allowed");
  EXPECT_EQ(e164(phone_normaliser({"voip"}), "+44 56 1234 5678", "GB"), "+445612345678");
}

TEST(phone_normaliser, unknown_type_name_throws) {
  EXPECT_THROW(phone_normaliser({"mobile", "premium"}), std::invalid_argument);
  EXPECT_THROW(phone_normaliser({"MOBILE"}), std::invalid_argument);
  EXPECT_THROW(phone_normaliser({""}), std::invalid_argument);
  EXPECT_NO_THROW(phone_normaliser({"fixed_line", "mobile", "fixed_line_or_mobile", "toll_free",
                                    "premium_rate", "shared_cost", "voip", "personal_number",
                                    "pager", "uan", "voicemail", "unknown"}));
}

TEST(phone_normaliser, nothing_allowed_refuses_everything) {
  const phone_normaliser none({});
  EXPECT_EQ(e164(none, "050 123 4567", "AE"), "reject number_type_not_allowed: mobile not allowed");
}

TEST(phone_normaliser, known_regions) {
  EXPECT_TRUE(phone_normaliser::is_known_region("AE"));
  EXPECT_TRUE(phone_normaliser::is_known_region("US"));
  EXPECT_TRUE(phone_normaliser::is_known_region("GB"));
  EXPECT_FALSE(phone_normaliser::is_known_region("UK"));
  EXPECT_FALSE(phone_normaliser::is_known_region("ae"));
  EXPECT_FALSE(phone_normaliser::is_known_region("ZZ"));
  EXPECT_FALSE(phone_normaliser::is_known_region("001"));
  EXPECT_FALSE(phone_normaliser::is_known_region(""));
}

TEST(phone_normaliser, concurrent_use_gives_the_same_answers) {
  const phone_normaliser phones(default_types);
  std::atomic<int> wrong{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < 2000; ++i) {
        auto ok = phones.normalise("050 123 4567", "AE");
        auto premium = phones.normalise("+44 909 876 5432", "AE");
        if (!ok || ok.value() != "+971501234567" || premium ||
            premium.error().reason != "number_type_not_allowed") {
          ++wrong;
        }
      }
    });
  }
  for (auto& thread : threads) {
    thread.join();
  }
  EXPECT_EQ(wrong.load(), 0);
}

}  // namespace
}  // namespace dialer
