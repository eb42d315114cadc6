#!/usr/bin/env bash
# Webhooks handled per second with durable recording: BUILD/bench/webhook_bench (webhook_service
# + sqlite_store, as the daemon runs them) against its own keep-alive load generator, in four
# configurations: SQLite synchronous FULL and NORMAL, each without authentication and with HMAC
# signing. The daemon side (event loop + store writer) is pinned to core 1, the load generator to
# core 0.
#
#   bash bench/webhooks.sh BUILD_DIR
#
# Each run: a fresh store in a temporary directory on the build directory's disk with WH_TASKS
# tasks STARTED through the store's API (untimed), then one session.ended per task over
# WH_CONNECTIONS connections, at most WH_SECONDS; events/s, latency p50/p99, commits and jobs
# per commit, daemon CPU per event; and a read-only check of the database afterwards. Exits
# non-zero unless every run answered every event 200 "applied" and passed the check.
# Knobs (environment):
#   WH_TASKS        STARTED tasks, one event each (default 200000)
#   WH_CONNECTIONS  keep-alive connections, one request in flight each (default 64)
#   WH_SECONDS      time bound of the load (default 30)
#   WH_CONFIGS      runs as SYNC:AUTH words (default "full:none full:hmac normal:none normal:hmac")
#   WH_REPEAT       runs of each configuration (default 1)
#   WH_SESSION_IDS  random (default: UUIDs, as Agentix sends) or sequential (ids in task order:
#                   the store's session index then loses neighbouring entries, as with few live
#                   calls; for comparison)
#   WH_DIR          where the run directories go (default BUILD_DIR; keep it off tmpfs, or
#                   synchronous FULL measures nothing)
#   WH_KEEP=1       keep the run directories (state.db, result.json)
#   WH_RESULT       also append each run's figures as one JSON line to this file
#   WH_PERF=1       perf record (cpu-clock, DWARF call graphs) of the timed window only, into each
#                   kept run directory; report with
#                   perf report -i DIR/perf.data --no-children --comm wh-loop,wh-store
set -euo pipefail

usage() {
  echo "usage: bash bench/webhooks.sh BUILD_DIR" >&2
  exit 2
}
[[ $# -eq 1 ]] || usage
root=$(cd "$(dirname "$0")/.." && pwd)
build=$(cd "$root" && cd "$1" && pwd) || usage
bin="$build/bench/webhook_bench"
[[ -x $bin ]] || { echo "webhooks: $bin is missing: build first (make build)" >&2; exit 1; }
command -v python3 >/dev/null || { echo "webhooks: python3 is required (scripts/setup.sh)" >&2; exit 1; }

tasks=${WH_TASKS:-200000}
connections=${WH_CONNECTIONS:-64}
seconds=${WH_SECONDS:-30}
configs=${WH_CONFIGS:-full:none full:hmac normal:none normal:hmac}
repeat=${WH_REPEAT:-1}
session_ids=${WH_SESSION_IDS:-random}
perf=${WH_PERF:-0}
keep=${WH_KEEP:-0}
((perf == 1)) && keep=1

cores=$(nproc)
daemon_core=1
load_core=0
if ((cores < 2)); then
  echo "webhooks: warning: $cores core(s): nothing is pinned" >&2
  daemon_core=-1
  load_core=-1
fi
if ((perf == 1)) && ! command -v perf >/dev/null; then
  echo "webhooks: WH_PERF=1 needs perf" >&2
  exit 1
fi

results=$(mktemp "${TMPDIR:-/tmp}/webhooks-results.XXXXXX")
runs=()
cleanup() {
  local status=$?
  trap - EXIT INT TERM
  rm -f "$results"
  for r in "${runs[@]}"; do
    if [[ $keep == 1 || $status -ne 0 ]]; then
      [[ -d $r ]] && echo "webhooks: run directory kept: $r" >&2
    else
      rm -rf "$r"
    fi
  done
  exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

failed=0
for config in $configs; do
  sync=${config%%:*}
  auth=${config##*:}
  for ((n = 1; n <= repeat; n++)); do
    run=$(mktemp -d "${WH_DIR:-$build}/webhooks-run.XXXXXX")
    runs+=("$run")
    load=$(cut -d' ' -f1 /proc/loadavg)
    wrap=()
    args=()
    if ((perf == 1)); then
      mkfifo "$run/perf.ctl" "$run/perf.ack"
      wrap=(perf record -e cpu-clock -F 999 --call-graph dwarf,16384 -D -1
            --control "fifo:$run/perf.ctl,$run/perf.ack" -o "$run/perf.data" --)
      args=(--perf-control "$run/perf.ctl,$run/perf.ack")
    fi
    echo "-- load average before the run: $load"
    status=0
    "${wrap[@]}" "$bin" --dir "$run" --tasks "$tasks" --connections "$connections" \
      --seconds "$seconds" --sync "$sync" --auth "$auth" --session-ids "$session_ids" --daemon-core "$daemon_core" \
      --load-core "$load_core" --json "$run/result.json" "${args[@]}" || status=$?
    if [[ $status -ne 0 || ! -s $run/result.json ]]; then
      echo "webhooks: the $sync/$auth run failed (exit $status)" >&2
      failed=1
      continue
    fi
    python3 -c 'import json, sys; r = json.load(open(sys.argv[1])); r["load"] = float(sys.argv[2]);
print(json.dumps(r))' "$run/result.json" "$load" >> "$results"
    rm -f "$run/state.db" "$run/state.db-wal" "$run/state.db-shm" "$run/state.db.lock" \
      "$run/perf.ctl" "$run/perf.ack"
  done
done

[[ -n ${WH_RESULT:-} ]] && cat "$results" >> "$WH_RESULT"

python3 - "$results" <<'PY'
import json, subprocess, sys, time
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
model = "?"
for line in open("/proc/cpuinfo"):
    if line.startswith("model name"):
        model = line.split(":", 1)[1].strip()
        break
print()
print("| synchronous | auth | connections | events/s | p50 ms | p99 ms | commits | jobs/commit "
      "| daemon CPU us/event (loop + writer) | core busy | checked | load |")
print("|---|---|---|---|---|---|---|---|---|---|---|---|")
for r in rows:
    print(f"| {r['synchronous']} | {r['auth']} | {r['connections']} | {r['events_per_s']:,.0f} "
          f"| {r['p50_ms']:.2f} | {r['p99_ms']:.2f} | {r['commits']:,} "
          f"| {r['jobs'] / max(r['commits'], 1):.1f} "
          f"| {r['cpu_us_per_event']:.1f} ({r['loop_us_per_event']:.1f} + "
          f"{r['writer_us_per_event']:.1f}) | {100 * r['daemon_cpu_s'] / r['seconds']:.0f} % "
          f"| {'OK' if r['verified'] else 'FAILED'} | {r['load']:.1f} |")
groups = {}
for r in rows:
    groups.setdefault((r["synchronous"], r["auth"]), []).append(r)
if any(len(g) > 1 for g in groups.values()):
    print()
    for (sync, auth), g in groups.items():
        rates = sorted(r["events_per_s"] for r in g)
        cpu = sorted(r["cpu_us_per_event"] for r in g)
        print(f"{sync}/{auth}: best {rates[-1]:,.0f} events/s ({rates[0]:,.0f}-{rates[-1]:,.0f} "
              f"over {len(g)} runs), daemon CPU {cpu[0]:.1f}-{cpu[-1]:.1f} us/event")
print()
ids = ", ".join(sorted({r["session_ids"] for r in rows}))
counts = ", ".join(sorted({f"{r['tasks']:,}" for r in rows}))
print(f"tasks: {counts}, session ids: {ids}")
print(f"machine: nproc {subprocess.check_output(['nproc'], text=True).strip()}, {model}, "
      f"Linux {subprocess.check_output(['uname', '-r'], text=True).strip()}, "
      f"{time.strftime('%Y-%m-%d %H:%M %Z')}")
PY
exit "$failed"
