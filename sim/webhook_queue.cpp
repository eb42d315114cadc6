#include "sim/webhook_queue.hpp"

#include <algorithm>

#include "sim/json_text.hpp"
#include "sim/webhook.hpp"

namespace dialer::sim {

namespace {

// std::push_heap builds a max-heap: "later" sorts first, so the earliest due is on top.
bool later(const webhook_delivery& a, const webhook_delivery& b) {
  return a.due != b.due ? a.due > b.due : a.seq > b.seq;
}

}  // namespace

std::string_view to_string(transport_error e) {
  switch (e) {
    case transport_error::none:
      return "none";
    case transport_error::connect:
      return "connect";
    case transport_error::timeout:
      return "timeout";
    case transport_error::io:
      return "io";
  }
  return "io";
}

webhook_queue::webhook_queue(const webhook_options& options, const session_store& store,
                             const std::vector<std::string>& phone_number_ids)
    : options_(options),
      store_(store),
      phone_number_ids_(phone_number_ids),
      log_(options.log_path.empty() ? ledger() : ledger(options.log_path, "webhook-log")) {}

void webhook_queue::set_waker(std::function<void()> wake) {
  const std::lock_guard lock(mutex_);
  wake_ = std::move(wake);
  wake_posted_ = false;
  sender_looks_at_ = steady_time::max();
}

void webhook_queue::push(webhook_delivery d) {
  d.seq = next_seq_++;
  const steady_time due = d.due;
  heap_.push_back(d);
  std::push_heap(heap_.begin(), heap_.end(), later);
  if (due < sender_looks_at_ && !wake_posted_ && wake_) {
    wake_posted_ = true;
    wake_();
  }
}

void webhook_queue::schedule(webhook_delivery d) {
  if (static_cast<std::int64_t>(heap_.size()) + in_flight_ >= options_.queue_limit) {
    ++queue_dropped_;
    log(d, log_result::dropped, {}, {});
    return;
  }
  push(d);
}

void webhook_queue::on_placed(const session_record& s, std::uint64_t index, steady_time now,
                              prng& rng) {
  const std::lock_guard lock(mutex_);
  for (const session_event event : {session_event::created, session_event::ended}) {
    const event_faults f = draw_event_faults(options_, rng);
    webhook_delivery d;
    d.due = (event == session_event::created ? now : now + s.duration) + f.delay;
    d.session = &s;
    d.index = index;
    d.event = event;
    d.lost = f.lost;
    ++events_;
    schedule(d);
    // A lost event is never delivered, so it has no copy either.
    if (!f.lost && f.duplicate) {
      ++duplicated_;
      d.copy = true;
      d.due += f.copy_delay;
      schedule(d);
    }
  }
}

steady_time webhook_queue::take_due(steady_time now, system_time wall, std::size_t max,
                                    std::vector<webhook_delivery>& out) {
  const std::lock_guard lock(mutex_);
  wake_posted_ = false;
  std::size_t taken = 0;
  while (!heap_.empty() && heap_.front().due <= now && taken < max) {
    std::pop_heap(heap_.begin(), heap_.end(), later);
    const webhook_delivery d = heap_.back();
    heap_.pop_back();
    if (d.lost) {
      ++lost_;
      log(d, log_result::lost, wall, now);
      continue;
    }
    ++in_flight_;
    out.push_back(d);
    ++taken;
  }
  const steady_time next = heap_.empty() ? steady_time::max() : heap_.front().due;
  // With every connection busy the sender looks again when one frees up: no wake-up needed.
  sender_looks_at_ = taken < max ? next : steady_time::min();
  return next;
}

void webhook_queue::on_attempt(webhook_delivery d, attempt_result result, steady_time now,
                               system_time wall) {
  const std::lock_guard lock(mutex_);
  --in_flight_;
  ++sent_;
  ++d.attempts;
  d.last_status = static_cast<std::int16_t>(result.status);
  if (result.error == transport_error::none && result.status >= 200 && result.status < 300) {
    if (d.copy) {
      ++duplicates_delivered_;
      log(d, log_result::duplicate_delivered, wall, now);
    } else {
      ++delivered_;
      log(d, log_result::delivered, wall, now);
    }
    return;
  }
  if (result.error != transport_error::none) {
    ++transport_errors_[static_cast<std::size_t>(result.error)];
  } else if (result.status >= 0 && result.status < 600) {
    ++non2xx_[result.status];
  }
  if (d.attempts >= options_.max_attempts) {
    ++gave_up_;
    log(d, log_result::gave_up, wall, now);
    return;
  }
  ++retries_;
  d.due = now + retry_delay(options_.backoff, d.attempts);
  push(d);
}

void webhook_queue::build_request(const webhook_delivery& d, system_time wall, hmac_sha256* signer,
                                  std::string& out) const {
  thread_local std::string id;
  thread_local std::string body;
  id.clear();
  body.clear();
  const session_record& s = *d.session;
  store_.append_id(d.index, s.random_half, id);
  append_event_json(body, d.event, id, phone_number_ids_[s.phone_number_index], s);
  const std::int64_t unix_seconds =
      std::chrono::duration_cast<seconds>(wall.time_since_epoch()).count();
  append_webhook_request(out, options_, body, unix_seconds, signer);
}

void webhook_queue::log(const webhook_delivery& d, log_result result, system_time wall,
                        steady_time now) {
  if (!log_.enabled()) {
    return;
  }
  static constexpr std::string_view results[] = {"delivered", "duplicate_delivered", "lost",
                                                 "gave_up", "dropped"};
  const session_record& s = *d.session;
  std::string& line = log_.buffer();
  line.append("{\"event\":\"");
  line.append(to_string(d.event));
  line.append("\",\"sessionId\":\"");
  store_.append_id(d.index, s.random_half, line);
  line.append("\",\"taskId\":");
  append_json_string(line, s.task_id);
  line.append(",\"campaignId\":");
  append_json_string(line, s.campaign_id);
  line.append(",\"result\":\"");
  line.append(results[static_cast<std::size_t>(result)]);
  line.append("\",\"attempts\":");
  append_int(line, d.attempts);
  line.append(",\"status\":");
  append_int(line, d.last_status);
  if (d.event == session_event::ended) {
    const session_analysis a = analysis_of(s);
    line.append(",\"endReason\":\"");
    line.append(to_string(s.reason));
    line.append("\",\"durationSeconds\":");
    append_int(line, duration_seconds(s));
    line.append(",\"intent\":\"");
    line.append(a.intent);
    line.append("\",\"resolution\":\"");
    line.append(a.resolution);
    line.append("\",\"sentiment\":\"");
    line.append(a.sentiment);
    line.push_back('"');
  }
  // A dropped delivery is logged at placement, where the caller has no clock reading to spare:
  // its times are the event's own.
  if (result == log_result::dropped) {
    now = d.due;
    wall = s.placed_wall + std::chrono::duration_cast<system_time::duration>(d.due - s.placed);
  }
  line.append(",\"ts_ms\":");
  append_int(line, to_unix_ms(wall));
  line.append(",\"mono_ns\":");
  append_int(line, to_ns(now));
  line.append("}\n");
  log_.line_done();
}

std::int64_t webhook_queue::pending() {
  const std::lock_guard lock(mutex_);
  return static_cast<std::int64_t>(heap_.size()) + in_flight_;
}

void webhook_queue::flush_log() {
  const std::lock_guard lock(mutex_);
  log_.flush();
}

void webhook_queue::finish() {
  const std::lock_guard lock(mutex_);
  pending_at_exit_ += static_cast<std::int64_t>(heap_.size()) + in_flight_;
  heap_.clear();
  in_flight_ = 0;
  wake_ = nullptr;
  log_.flush();
}

long webhook_queue::log_errors() {
  const std::lock_guard lock(mutex_);
  return log_.errors();
}

void webhook_queue::append_stats_json(std::string& out) {
  const std::lock_guard lock(mutex_);
  const auto field = [&out](std::string_view name, std::int64_t v) {
    out.push_back('"');
    out.append(name);
    out.append("\":");
    append_int(out, v);
    out.push_back(',');
  };
  out.append(",\"webhooks\":{");
  field("events", events_);
  field("duplicated", duplicated_);
  field("sent", sent_);
  field("delivered", delivered_);
  field("duplicates_delivered", duplicates_delivered_);
  out.append("\"non2xx_by_status\":");
  append_status_counts(out, non2xx_);
  out.append(",\"transport_errors\":{");
  for (std::size_t e = 1; e < transport_error_count; ++e) {
    if (e != 1) {
      out.push_back(',');
    }
    out.push_back('"');
    out.append(to_string(static_cast<transport_error>(e)));
    out.append("\":");
    append_int(out, transport_errors_[e]);
  }
  out.append("},");
  field("retries", retries_);
  field("lost", lost_);
  field("gave_up", gave_up_);
  field("queue_dropped", queue_dropped_);
  field("pending", static_cast<std::int64_t>(heap_.size()) + in_flight_);
  out.append("\"pending_at_exit\":");
  append_int(out, pending_at_exit_);
  out.push_back('}');
}

}  // namespace dialer::sim
