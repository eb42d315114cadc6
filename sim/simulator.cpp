#include "sim/simulator.hpp"

#include <algorithm>
#include <optional>

#include "sim/json_text.hpp"
#include "sim/request.hpp"

namespace dialer::sim {

namespace {

// Compares without an early exit, so response timing does not reveal how much of a guessed key
// was right.
bool same_secret(std::string_view given, std::string_view key) {
  if (given.size() != key.size()) {
    return false;
  }
  unsigned char diff = 0;
  for (std::size_t i = 0; i < key.size(); ++i) {
    diff |= static_cast<unsigned char>(given[i] ^ key[i]);
  }
  return diff == 0;
}

bool is_bad_request(int status) {
  return status == 400 || status == 413 || status == 422 || status == 431;
}

std::string_view outcome_name(fault_decision d) {
  switch (d) {
    case fault_decision::after_place_500:
      return to_string(fault_kind::after_place_500);
    case fault_decision::drop_after_place:
      return to_string(fault_kind::drop_after_place);
    default:
      return "ok";
  }
}

}  // namespace

simulator::simulator(const sim_config& config, const sim_clock& clock, std::uint64_t seed)
    : config_(config),
      clock_(clock),
      faults_(config.fault_429, config.fault_503, config.fault_500_after_place,
              config.fault_drop_after_place),
      rng_(seed),
      limiter_(config.rate_limit_per_s),
      sessions_(rng_.next()),
      ledger_(config.ledger_path.empty() ? ledger() : ledger(config.ledger_path)),
      webhooks_(config.webhooks.enabled()
                    ? std::make_unique<webhook_queue>(config_.webhooks, sessions_,
                                                      config_.phone_number_ids)
                    : nullptr) {}

bool simulator::authorized(const sim_request& req) const {
  if (!req.x_api_key.empty()) {
    return same_secret(req.x_api_key, config_.api_key);
  }
  std::string_view auth = req.authorization;
  constexpr std::string_view scheme = "bearer ";
  if (auth.size() <= scheme.size()) {
    return false;
  }
  for (std::size_t i = 0; i < scheme.size(); ++i) {
    const char c = auth[i];
    if ((c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c) != scheme[i]) {
      return false;
    }
  }
  auth.remove_prefix(scheme.size());
  return same_secret(auth, config_.api_key);
}

int simulator::phone_number_index(std::string_view id) const {
  for (std::size_t i = 0; i < config_.phone_number_ids.size(); ++i) {
    if (config_.phone_number_ids[i] == id) {
      return static_cast<int>(i);
    }
  }
  return -1;
}

void simulator::error(sim_response& out, int status, std::string_view message,
                      std::string_view field) {
  out.status = status;
  out.body.clear();
  append_error_json(out.body, message, field);
}

void simulator::set_retry_after(sim_response& out, system_time now) const {
  switch (config_.retry_after.form) {
    case retry_after_spec::kind::none:
      break;
    case retry_after_spec::kind::seconds:
      append_int(out.retry_after, config_.retry_after.seconds);
      break;
    case retry_after_spec::kind::http_date:
      append_http_date(out.retry_after, now + seconds(config_.retry_after.seconds));
      break;
  }
}

nanoseconds simulator::latency_for(const sim_request& req) {
  if (config_.latency.max <= nanoseconds::zero() ||
      match_route(req.method, req.target).kind != route_kind::start_call) {
    return nanoseconds::zero();
  }
  const std::lock_guard lock(mutex_);
  return nanoseconds(rng_.uniform(config_.latency.min.count(), config_.latency.max.count()));
}

void simulator::handle(const sim_request& req, sim_response& out) {
  out.reset();
  const route_match route = match_route(req.method, req.target);
  if (route.internal) {
    if (!authorized(req)) {
      error(out, 401, "unauthorized");
    } else if (route.kind == route_kind::sim_stats) {
      out.body = stats_json();
    } else if (route.kind == route_kind::method_not_allowed) {
      out.allow = route.allow;
      error(out, 405, "method not allowed");
    } else {
      error(out, 404, "not found");
    }
    return;
  }

  if (!authorized(req)) {
    error(out, 401, "unauthorized");
  } else {
    switch (route.kind) {
      case route_kind::start_call:
        // Accounts for itself, inside the critical section that places the call.
        start_call(req, route.id, out);
        return;
      case route_kind::list_phone_numbers:
        list_phone_numbers(route.query, out);
        break;
      case route_kind::get_session:
      case route_kind::get_session_messages:
        get_session(route.id, route.kind == route_kind::get_session_messages, out);
        break;
      case route_kind::method_not_allowed:
        out.allow = route.allow;
        error(out, 405, "method not allowed");
        break;
      case route_kind::sim_stats:
      case route_kind::not_found:
        error(out, 404, "not found");
        break;
    }
  }
  const std::lock_guard lock(mutex_);
  stats_.on_request();
  if (out.status == 401) {
    stats_.on_unauthorized();
  } else if (is_bad_request(out.status)) {
    stats_.on_bad_request();
  }
  stats_.on_response(out.status);
}

void simulator::on_protocol_error(int status) {
  const std::lock_guard lock(mutex_);
  stats_.on_request();
  stats_.on_bad_request();
  stats_.on_response(status);
}

void simulator::list_phone_numbers(std::string_view query, sim_response& out) {
  // (assumed) pages count from 1; size is 1..100 and defaults to 50.
  const auto read = [&](std::string_view name, std::int64_t fallback, std::int64_t lo,
                        std::int64_t hi, std::int64_t& value) {
    value = fallback;
    const auto text = query_param(query, name);
    if (!text) {
      return true;
    }
    std::int64_t v = 0;
    if (text->empty() || text->size() > 9) {
      return false;
    }
    for (const char c : *text) {
      if (c < '0' || c > '9') {
        return false;
      }
      v = v * 10 + (c - '0');
    }
    value = v;
    return v >= lo && v <= hi;
  };
  std::int64_t size = 0;
  std::int64_t page = 0;
  if (!read("size", 50, 1, 100, size)) {
    error(out, 422, "size must be an integer from 1 to 100", "size");
    return;
  }
  if (!read("page", 1, 1, 1'000'000'000, page)) {
    error(out, 422, "page must be a positive integer", "page");
    return;
  }
  const auto total = static_cast<std::int64_t>(config_.phone_number_ids.size());
  out.body.append("{\"items\":[");
  for (std::int64_t i = (page - 1) * size; i < std::min(total, page * size); ++i) {
    if (i != (page - 1) * size) {
      out.body.push_back(',');
    }
    out.body.append("{\"id\":");
    append_json_string(out.body, config_.phone_number_ids[static_cast<std::size_t>(i)]);
    out.body.append(",\"phone_number\":\"+97145550");
    const std::int64_t n = 100 + i;  // +971455501NN: distinct and valid E.164
    append_int(out.body, n);
    out.body.append("\",\"label\":\"Simulated line ");
    append_int(out.body, i + 1);
    out.body.append("\"}");
  }
  out.body.append("],\"page\":");
  append_int(out.body, page);
  out.body.append(",\"size\":");
  append_int(out.body, size);
  out.body.append(",\"total\":");
  append_int(out.body, total);
  out.body.push_back('}');
}

void simulator::get_session(std::string_view id, bool messages, sim_response& out) {
  const std::lock_guard lock(mutex_);
  const session_record* s = sessions_.find(id);
  if (s == nullptr) {
    error(out, 404, "session not found");
    return;
  }
  const steady_time now = clock_.steady_now();
  if (messages) {
    append_messages_json(out.body, *s, now);
  } else {
    append_session_json(out.body, id, config_.phone_number_ids[s->phone_number_index], *s, now);
  }
}

void simulator::start_call(const sim_request& req, std::string_view phone_number_id,
                           sim_response& out) {
  // Everything that does not depend on shared state is decided before taking the lock.
  const int phone_index = phone_number_index(phone_number_id);
  std::optional<result<call_start_body, request_error>> parsed;
  bool rejected = true;
  if (phone_index < 0) {
    error(out, 404, "unknown phone number id");
  } else if (!is_json_content_type(req.content_type)) {
    error(out, 400, "Content-Type must be application/json");
  } else {
    parsed.emplace(parse_call_start(req.body));
    if (!parsed->ok()) {
      const request_error& e = parsed->error();
      error(out, e.status, e.message, e.field);
    } else if (!config_.agent_id.empty() && parsed->value().agent_id != config_.agent_id) {
      error(out, 404, "unknown agent_id", "agent_id");
    } else {
      rejected = false;
    }
  }

  const std::lock_guard lock(mutex_);
  stats_.on_request();
  const auto account = [&] {
    if (is_bad_request(out.status)) {
      stats_.on_bad_request();
    }
    if (!out.drop) {
      stats_.on_response(out.status);
    }
  };
  if (rejected) {
    account();
    return;
  }
  const call_start_body& call = parsed->value();
  const steady_time now = clock_.steady_now();
  const system_time wall = clock_.system_now();

  const fault_decision fault = faults_.draw(rng_);
  if (fault == fault_decision::http_429 || fault == fault_decision::http_503) {
    const bool is_429 = fault == fault_decision::http_429;
    stats_.on_fault(is_429 ? fault_kind::http_429 : fault_kind::http_503);
    error(out, is_429 ? 429 : 503, is_429 ? "too many requests" : "service unavailable");
    set_retry_after(out, wall);
    account();
    return;
  }
  if (!limiter_.try_acquire(now)) {
    stats_.on_fault(fault_kind::rate_limited);
    error(out, 429, "rate limit exceeded");
    out.retry_after = "1";
    account();
    return;
  }
  if (config_.max_active > 0 && stats_.active(now) >= config_.max_active) {
    stats_.on_fault(fault_kind::max_active);
    error(out, 409, "too many active calls");
    account();
    return;
  }

  // Placed from here on.
  nanoseconds duration(
      rng_.uniform(config_.call_duration.min.count(), config_.call_duration.max.count()));
  bool capped = false;
  if (call.max_duration_seconds < 1'000'000'000 && duration > seconds(call.max_duration_seconds)) {
    duration = seconds(call.max_duration_seconds);
    capped = true;
  }
  session_record record;
  record.random_half = rng_.next();
  record.placed = now;
  record.placed_wall = wall;
  record.duration = duration;
  // From the session's own bits, not a further draw: the end reason costs no PRNG state, so a
  // seed replays the same sessions whatever --end-reasons says.
  record.reason =
      capped ? end_reason::max_duration : pick_end_reason(config_.end_reasons, record.random_half);
  record.phone_number_index = static_cast<std::uint32_t>(phone_index);
  record.agent_id = call.agent_id;
  record.to_phone_number = call.to_phone_number;
  record.session_variables_json = call.session_variables_json;
  record.task_id = call.task_id;
  record.campaign_id = call.campaign_id;
  thread_local std::string session_id;
  session_id.clear();
  const session_record& stored = sessions_.add(record, session_id);
  stats_.on_placed(now, wall, duration, call.campaign_id, call.task_id, call.to_phone_number);
  if (webhooks_) {
    // Scheduled before the response exists: with no --webhook-delay, session.created can reach
    // the receiver before the client has read the 201.
    webhooks_->on_placed(stored, sessions_.size() - 1, now, rng_);
  }

  if (ledger_.enabled()) {
    std::string& line = ledger_.buffer();
    line.append("{\"ts_ms\":");
    append_int(line, to_unix_ms(wall));
    line.append(",\"mono_ns\":");
    append_int(line, to_ns(now));
    line.append(",\"session_id\":\"");
    line.append(session_id);
    line.append("\",\"task_id\":");
    append_json_string(line, call.task_id);
    line.append(",\"campaign_id\":");
    append_json_string(line, call.campaign_id);
    line.append(",\"phone\":\"");
    line.append(call.to_phone_number);
    line.append("\",\"idempotency_key\":");
    append_json_string(line, req.idempotency_key);
    line.append(",\"duration_ms\":");
    append_int(line, std::chrono::duration_cast<milliseconds>(duration).count());
    line.append(",\"outcome\":\"");
    line.append(outcome_name(fault));
    line.append("\",\"endReason\":\"");
    line.append(to_string(stored.reason));
    line.append("\",\"durationSeconds\":");
    append_int(line, duration_seconds(stored));
    line.append("}\n");
    ledger_.line_done();
  }

  switch (fault) {
    case fault_decision::after_place_500:
      stats_.on_fault(fault_kind::after_place_500);
      error(out, 500, "internal server error");
      break;
    case fault_decision::drop_after_place:
      stats_.on_fault(fault_kind::drop_after_place);
      out.drop = true;
      break;
    default:
      out.status = 201;
      out.body.append("{\"sessionId\":\"");
      out.body.append(session_id);
      out.body.append("\",\"status\":\"queued\"}");
      break;
  }
  account();
}

void simulator::flush_ledger() {
  const std::lock_guard lock(mutex_);
  ledger_.flush();
}

long simulator::ledger_errors() {
  const std::lock_guard lock(mutex_);
  return ledger_.errors();
}

std::string simulator::stats_json() {
  const std::lock_guard lock(mutex_);
  std::string out = stats_.to_json(clock_.steady_now());
  if (webhooks_) {
    out.pop_back();  // the closing brace
    webhooks_->append_stats_json(out);
    out.push_back('}');
  }
  return out;
}

}  // namespace dialer::sim
