#include "daemon/summary.hpp"

#include <boost/asio/executor_work_guard.hpp>
#include <vector>

#include "core/json.hpp"

namespace dialer {
namespace {

std::int64_t count(const campaign_summary& s, task_state state) {
  return s.by_state[static_cast<std::size_t>(state)];
}

std::int64_t total(const std::map<std::string, std::int64_t>& m) {
  std::int64_t n = 0;
  for (const auto& [k, v] : m) {
    n += v;
  }
  return n;
}

std::string breakdown(const std::map<std::string, std::int64_t>& m) {
  std::string out;
  for (const auto& [reason, n] : m) {
    out += out.empty() ? "  (" : ", ";
    out += reason + " " + std::to_string(n);
  }
  return out.empty() ? out : out + ")";
}

}  // namespace

void print_summary(const std::string& campaign, const campaign_summary& s, std::FILE* out) {
  const std::int64_t dialed = count(s, task_state::started) + count(s, task_state::ended) +
                              count(s, task_state::ended_unconfirmed) +
                              count(s, task_state::unknown) + count(s, task_state::failed) +
                              count(s, task_state::dialing);
  const auto line = [&](const char* name, std::int64_t n, const std::string& extra = {}) {
    std::fprintf(out, "  %-11s %9lld%s\n", name, static_cast<long long>(n), extra.c_str());
  };
  std::fprintf(out, "campaign %s: %lld rows read\n", campaign.c_str(),
               static_cast<long long>(s.rows_read));
  line("dialed", dialed);
  line("started", count(s, task_state::started) + count(s, task_state::ended) +
                      count(s, task_state::ended_unconfirmed));
  line("ended", count(s, task_state::ended));
  line("no end yet", count(s, task_state::started), " (STARTED, no session.ended recorded)");
  line("unconfirmed", count(s, task_state::ended_unconfirmed),
       " (no session.ended in time; session pulls did not settle them)");
  line("suppressed", total(s.suppressed_by_reason), breakdown(s.suppressed_by_reason));
  line("rejected", total(s.rejected_by_reason), breakdown(s.rejected_by_reason));
  line("failed", count(s, task_state::failed), breakdown(s.failed_by_class));
  line("unknown", count(s, task_state::unknown), breakdown(s.unknown_by_class));
  line("pending", count(s, task_state::pending));
}

void print_dry_run_tasks(const std::string& campaign, state_store& store,
                         boost::asio::io_context& io) {
  constexpr std::size_t page = 1024;
  std::int64_t cursor = 0;
  bool more = true;
  std::string line;
  // Keeps run_one() waiting for the store's answer (posted from its writer thread) instead of
  // returning at once on an io_context that has no work yet.
  auto guard = boost::asio::make_work_guard(io);
  io.restart();
  while (more) {
    bool answered = false;
    store.fetch_pending(campaign, cursor, page, [&](std::vector<dial_task> tasks) {
      for (const auto& t : tasks) {
        line.clear();
        line.append("{\"campaign\":");
        append_json_string(line, campaign);
        line.append(",\"task_id\":");
        append_json_string(line, t.task_id);
        line.append(",\"to_phone_number\":");
        append_json_string(line, t.phone_e164);
        line.append(",\"session_variables\":");
        line.append(t.variables_json);
        line.append("}\n");
        std::fwrite(line.data(), 1, line.size(), stdout);
        cursor = t.row_id;
      }
      more = tasks.size() == page;
      answered = true;
    });
    while (!answered) {
      io.run_one();
    }
  }
  std::fflush(stdout);
}

}  // namespace dialer
