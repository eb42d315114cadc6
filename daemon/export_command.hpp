#pragma once
// `dialerd export`: writes one campaign's tasks and call results for the CRM (core/task_export.hpp
// has the record format). Safe while the daemon runs: the store is only read.
#include <ostream>

namespace dialer {

// argv after "export": --campaign ID (required) [--format csv|jsonl] (default csv)
// [--state S] (repeatable or comma list; names as to_string(task_state): pending, dialing, started,
// ended, ended_unconfirmed, failed, unknown, suppressed) [--output FILE] (default stdout; written
// to FILE.tmp then renamed, so a reader never sees half a file) and either --config FILE (the
// daemon YAML: use config::load_daemon_config(...).state_path) or --state-path FILE.
// --help prints usage to stdout, exit 0. Exit codes: 0 ok, 2 usage error, 1 runtime error (store
// missing/unreadable, unknown campaign → message naming it, and listing the known campaigns).
//
// `argv[0]` is the first argument after "export" (argc may be 0). The export goes to `out` unless
// --output is given; usage goes to `out`, messages to `err`. A --config that does not load is a
// usage error (2), as it is for dialerd itself. Blocking; call it from main, not an event loop.
int run_export(int argc, char** argv, std::ostream& out, std::ostream& err);

}  // namespace dialer
