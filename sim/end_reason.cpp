#include "sim/end_reason.hpp"

#include <cmath>
#include <cstdlib>
#include <string>

#include "sim/sim_config.hpp"

namespace dialer::sim {

std::string_view to_string(end_reason r) {
  switch (r) {
    case end_reason::completed:
      return "completed";
    case end_reason::no_answer:
      return "no_answer";
    case end_reason::busy:
      return "busy";
    case end_reason::voicemail:
      return "voicemail";
    case end_reason::failed:
      return "failed";
    case end_reason::max_duration:
      return "max_duration";
  }
  return "completed";
}

bool has_conversation(end_reason r) {
  return r != end_reason::no_answer && r != end_reason::busy && r != end_reason::failed;
}

end_reason_weights parse_end_reasons(std::string_view text) {
  const auto fail = [&](const std::string& why) {
    return config_error("--end-reasons: " + why + " in '" + std::string(text) + "'");
  };
  end_reason_weights out;
  double sum = 0;
  while (!text.empty()) {
    const auto comma = text.find(',');
    const std::string_view item = text.substr(0, comma);
    text = comma == std::string_view::npos ? std::string_view{} : text.substr(comma + 1);
    const auto eq = item.find('=');
    if (eq == std::string_view::npos) {
      throw fail("expected REASON=WEIGHT");
    }
    const std::string_view name = item.substr(0, eq);
    end_reason reason{};
    bool known = false;
    for (std::size_t i = 0; i < end_reason_count; ++i) {
      const auto r = static_cast<end_reason>(i);
      if (r != end_reason::max_duration && to_string(r) == name) {
        reason = r;
        known = true;
      }
    }
    if (!known) {
      throw fail("unknown reason '" + std::string(name) +
                 "' (completed, no_answer, busy, voicemail, failed)");
    }
    for (const end_reason_weight& w : out) {
      if (w.reason == reason) {
        throw fail("'" + std::string(name) + "' given twice");
      }
    }
    const std::string number(item.substr(eq + 1));
    char* end = nullptr;
    const double weight = std::strtod(number.c_str(), &end);
    if (number.empty() || end != number.c_str() + number.size() || !std::isfinite(weight) ||
        weight < 0) {
      throw fail("weight of '" + std::string(name) + "' is not a non-negative number");
    }
    out.push_back({reason, weight});
    sum += weight;
  }
  if (out.empty() || !(sum > 0)) {
    throw fail("the weights add up to 0");
  }
  return out;
}

end_reason pick_end_reason(const end_reason_weights& weights, std::uint64_t bits) {
  if (weights.size() == 1) {
    return weights.front().reason;
  }
  // splitmix64's finaliser: the session id and the fake analysis read the raw bits.
  bits = (bits ^ (bits >> 30)) * 0xbf58476d1ce4e5b9ULL;
  bits = (bits ^ (bits >> 27)) * 0x94d049bb133111ebULL;
  bits ^= bits >> 31;
  double sum = 0;
  for (const end_reason_weight& w : weights) {
    sum += w.weight;
  }
  const double u = static_cast<double>(bits >> 11) * 0x1.0p-53 * sum;
  double upto = 0;
  for (const end_reason_weight& w : weights) {
    upto += w.weight;
    if (u < upto && w.weight > 0) {
      return w.reason;
    }
  }
  // Rounding at the top end: the last reason with a weight.
  for (auto it = weights.rbegin(); it != weights.rend(); ++it) {
    if (it->weight > 0) {
      return it->reason;
    }
  }
  return end_reason::completed;
}

}  // namespace dialer::sim
