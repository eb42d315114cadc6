#include "sim/sim_stats.hpp"

#include "sim/json_text.hpp"

namespace dialer::sim {

std::string_view to_string(fault_kind k) {
  switch (k) {
    case fault_kind::http_429:
      return "429";
    case fault_kind::http_503:
      return "503";
    case fault_kind::after_place_500:
      return "500_after_place";
    case fault_kind::drop_after_place:
      return "drop_after_place";
    case fault_kind::rate_limited:
      return "rate_limited";
    case fault_kind::max_active:
      return "max_active";
  }
  return "unknown";
}

void sim_stats::on_response(int status) {
  if (status >= 0 && static_cast<std::size_t>(status) < responses_.size()) {
    ++responses_[static_cast<std::size_t>(status)];
  }
}

std::int64_t sim_stats::responses(int status) const {
  if (status < 0 || static_cast<std::size_t>(status) >= responses_.size()) {
    return 0;
  }
  return responses_[static_cast<std::size_t>(status)];
}

steady_time sim_stats::clamp(steady_time now) {
  if (now < latest_) {
    return latest_;
  }
  latest_ = now;
  return now;
}

void sim_stats::expire(steady_time now) {
  while (!ends_.empty() && ends_.top() <= now) {
    ends_.pop();
  }
}

std::int64_t sim_stats::active(steady_time now) {
  expire(clamp(now));
  return static_cast<std::int64_t>(ends_.size());
}

sim_stats::placement sim_stats::on_placed(steady_time now, system_time wall, nanoseconds duration,
                                          std::string_view campaign_id, std::string_view task_id,
                                          std::string_view phone) {
  now = clamp(now);
  ++placed_;
  const std::int64_t wall_ms = to_unix_ms(wall);
  if (placed_ == 1) {
    first_placed_ms_ = wall_ms;
  }
  last_placed_ms_ = wall_ms;

  expire(now);
  // A zero-length call ends the instant it starts and is never active.
  if (duration > nanoseconds::zero()) {
    ends_.push(now + duration);
  }
  max_active_ = std::max(max_active_, static_cast<std::int64_t>(ends_.size()));

  const auto slide = [now](std::deque<steady_time>& starts, nanoseconds width, std::int64_t& max) {
    while (!starts.empty() && starts.front() <= now - width) {
      starts.pop_front();
    }
    starts.push_back(now);
    max = std::max(max, static_cast<std::int64_t>(starts.size()));
  };
  slide(starts_100ms_, window_100ms, max_starts_100ms_);
  slide(starts_1s_, window_1s, max_starts_1s_);

  placement result;
  // Length-prefixed so that ("a:b", "c") and ("a", "b:c") stay different keys.
  key_scratch_.clear();
  append_int(key_scratch_, static_cast<std::int64_t>(campaign_id.size()));
  key_scratch_.push_back(':');
  key_scratch_.append(campaign_id);
  key_scratch_.append(task_id);
  if (!task_keys_.insert(key_scratch_)) {
    result.duplicate_task = true;
    ++duplicates_by_task_id_;
  }
  if (!phones_.insert(phone)) {
    result.duplicate_phone = true;
    ++duplicates_by_phone_;
  }
  return result;
}

std::string sim_stats::to_json(steady_time now) {
  const std::int64_t active_now = active(now);
  std::string out;
  out.reserve(512);
  const auto field = [&out](std::string_view name, std::int64_t v) {
    out.push_back('"');
    out.append(name);
    out.append("\":");
    append_int(out, v);
    out.push_back(',');
  };
  out.push_back('{');
  field("requests", requests_);
  field("placed", placed_);
  field("duplicates_by_task_id", duplicates_by_task_id_);
  field("duplicates_by_phone", duplicates_by_phone_);
  field("max_active", max_active_);
  field("active", active_now);
  field("max_starts_100ms", max_starts_100ms_);
  field("max_starts_1s", max_starts_1s_);
  out.append("\"responses_by_status\":");
  append_status_counts(out, responses_);
  out.append(",\"faults\":{");
  for (std::size_t k = 0; k < fault_kind_count; ++k) {
    if (k != 0) {
      out.push_back(',');
    }
    out.push_back('"');
    out.append(to_string(static_cast<fault_kind>(k)));
    out.append("\":");
    append_int(out, faults_[k]);
  }
  out.append("},");
  field("unauthorized", unauthorized_);
  field("bad_requests", bad_requests_);
  field("first_placed_ms", first_placed_ms_);
  out.append("\"last_placed_ms\":");
  append_int(out, last_placed_ms_);
  out.push_back('}');
  return out;
}

}  // namespace dialer::sim
