// The /metrics page: every family of docs/operations.md, read from the modules' own counters at
// scrape time. Labels are campaign ids, trunk names and bounded enumerations only.
#include <string>

#include "control/control_service.hpp"
#include "core/prometheus.hpp"

namespace dialer {

std::string render_metrics(const control_context& ctx,
                           const std::map<std::string, campaign_summary>& summaries) {
  prom::page p;
  const auto campaigns = ctx.engine->campaigns();
  const auto trunks = ctx.engine->trunks();

  p.counter("dialerd_calls_started_total",
            "calls/start answered 2xx with a sessionId (or shown placed by a webhook)");
  for (const auto& c : campaigns) {
    p.sample({{"campaign", c.id}, {"trunk", c.trunk}}, c.started);
  }
  p.counter("dialerd_calls_failed_total", "requests that started no call, by error class");
  for (const auto& c : campaigns) {
    for (const auto& [cls, n] : c.failed_by_class) {
      p.sample({{"campaign", c.id}, {"trunk", c.trunk}, {"class", cls}}, n);
    }
  }
  p.counter("dialerd_calls_ended_total", "session.ended recorded, by end reason");
  for (const auto& c : campaigns) {
    for (const auto& [reason, n] : c.ended_by_reason) {
      p.sample({{"campaign", c.id}, {"reason", reason}}, n);
    }
  }
  p.gauge("dialerd_calls_active", "trunk slots held: dialing, started and unknown calls");
  for (const auto& t : trunks) {
    p.sample({{"trunk", t.name}}, t.active);
  }
  p.gauge("dialerd_trunk_capacity", "max_concurrent_calls in force");
  for (const auto& t : trunks) {
    p.sample({{"trunk", t.name}}, t.capacity);
  }
  p.gauge("dialerd_trunk_reserved_slots", "slots kept free for other traffic");
  for (const auto& t : trunks) {
    p.sample({{"trunk", t.name}}, t.reserved);
  }
  p.gauge("dialerd_rate_target_calls_per_second", "the configured pace in force");
  for (const auto& t : trunks) {
    p.sample({{"scope", "trunk"}, {"name", t.name}}, t.rate_target);
  }
  for (const auto& c : campaigns) {
    p.sample({{"scope", "campaign"}, {"name", c.id}}, c.rate_target);
  }
  p.gauge("dialerd_rate_achieved_calls_per_second", "call starts per second over the last 10 s");
  for (const auto& t : trunks) {
    p.sample({{"scope", "trunk"}, {"name", t.name}}, t.rate_achieved);
  }
  for (const auto& c : campaigns) {
    p.sample({{"scope", "campaign"}, {"name", c.id}}, c.rate_achieved);
  }
  p.gauge("dialerd_tasks", "tasks by state");
  for (const auto& c : campaigns) {
    const auto it = summaries.find(c.id);
    if (it == summaries.end()) {
      continue;
    }
    for (std::size_t k = 0; k < task_state_count; ++k) {
      p.sample({{"campaign", c.id}, {"state", to_string(static_cast<task_state>(k))}},
               it->second.by_state[k]);
    }
  }
  p.gauge("dialerd_campaign_paused", "1 when the campaign is paused or cancelled");
  for (const auto& c : campaigns) {
    p.sample({{"campaign", c.id}}, c.paused);
  }
  p.histogram("dialerd_request_duration_seconds",
              "calls/start latency, first byte written to last byte read");
  for (const auto& t : trunks) {
    p.histogram_sample({{"trunk", t.name}}, t.request_latency);
  }
  p.counter("dialerd_webhooks_total", "webhooks by event and result");
  if (ctx.webhooks != nullptr) {
    for (const auto& [key, n] : ctx.webhooks->stats().by_event_and_result) {
      const auto slash = key.find('/');
      p.sample({{"event", std::string_view(key).substr(0, slash)},
                {"result", std::string_view(key).substr(slash + 1)}},
               n);
    }
  }
  p.counter("dialerd_webhook_refusals_total", "webhook requests refused by the HTTP layer");
  if (ctx.webhooks != nullptr) {
    const webhook_stats w = ctx.webhooks->stats();
    p.sample({{"status", "408"}}, w.refused_408);
    p.sample({{"status", "413"}}, w.refused_413);
    p.sample({{"status", "431"}}, w.refused_431);
    p.sample({{"status", "503"}}, w.refused_busy);
  }
  p.counter("dialerd_csv_rows_rejected_total", "CSV rows that became no task, by reason");
  for (const auto& c : campaigns) {
    const auto it = summaries.find(c.id);
    if (it == summaries.end()) {
      continue;
    }
    for (const auto& [reason, n] : it->second.rejected_by_reason) {
      p.sample({{"campaign", c.id}, {"reason", reason}}, n);
    }
  }
  p.histogram("dialerd_store_commit_duration_seconds",
              "one group commit of the state store, BEGIN to COMMIT (fsync included)");
  p.histogram_sample({}, ctx.store->commit_latency());
  p.counter("dialerd_store_jobs_total", "state store jobs run");
  p.sample({}, ctx.store->stats().jobs);
  p.gauge("dialerd_pool_connections", "keep-alive HTTPS connections to the Agentix API");
  {
    const https_pool_stats s = ctx.pool->stats();
    p.sample({{"state", "connecting"}}, s.connecting);
    p.sample({{"state", "idle"}}, s.idle);
    p.sample({{"state", "busy"}}, s.busy);
  }
  p.counter("dialerd_retry_after_holds_total", "times the trunk was held by 429/503");
  for (const auto& t : trunks) {
    p.sample({{"trunk", t.name}}, t.holds);
  }
  p.gauge("dialerd_trunk_held", "1 while a Retry-After hold is in force");
  for (const auto& t : trunks) {
    p.sample({{"trunk", t.name}}, t.held);
  }
  p.counter("dialerd_session_pulls_total", "settling pulls of calls with no session.ended");
  for (const auto& [result, n] : ctx.engine->pull_results()) {
    p.sample({{"result", result}}, n);
  }
  p.gauge("dialerd_build_info", "always 1");
  p.sample({{"version", ctx.version}}, 1);
  return p.text();
}

}  // namespace dialer
