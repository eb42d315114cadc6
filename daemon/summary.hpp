#pragma once
// What dialerd prints for people (the end-of-run summary) and for scripts (dry-run lines).
#include <boost/asio/io_context.hpp>
#include <cstdio>
#include <string>

#include "core/state_store.hpp"

namespace dialer {

// A few aligned lines: rows read, dialed, started, suppressed and rejected by reason, failed,
// unknown, pending.
void print_summary(const std::string& campaign, const campaign_summary& s, std::FILE* out);

// One JSON line per PENDING task of `campaign`: {"campaign","task_id","to_phone_number",
// "session_variables"}. Runs `io` until the store has answered every page.
void print_dry_run_tasks(const std::string& campaign, state_store& store,
                         boost::asio::io_context& io);

}  // namespace dialer
