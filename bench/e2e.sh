#!/usr/bin/env bash
# The end-to-end load benchmark: dialerd against agentix-sim on loopback, rate and concurrency
# not binding, 64 requests in flight (the pool's connections), durable recording (SQLite
# synchronous FULL). The simulator is pinned to core 0 and dialerd to core 1.
#
#   bash bench/e2e.sh BUILD_DIR [ROWS]        (ROWS defaults to 200000; at most 10000000)
#
# Prints rows, calls placed and duplicates (from the simulator's exact accounting), calls/s,
# dialerd's CPU seconds per 1,000 calls and its peak RSS, ingest and dialing separately, and the
# machine. Knobs (environment), for bench/rss.sh and experiments:
#   E2E_CONCURRENCY  trunk max_concurrent_calls (default 100000, the configuration's maximum:
#                    with max_duration 1s and slot_grace 0s it binds only above 100,000 calls/s)
#   E2E_POOL         api.pool.connections (default 64)
#   E2E_SYNC         store.synchronous: full (default) or normal
#   E2E_TIMEOUT      seconds before dialerd is stopped (default from ROWS and concurrency)
#   E2E_DIR          where the run directory goes (default BUILD_DIR; keep it off tmpfs, or
#                    synchronous FULL measures nothing)
#   E2E_KEEP=1       keep the run directory (logs, state.db, ledger)
#   E2E_RESULT       also write the figures as one JSON object to this file
#   E2E_PERF=1       record dialerd with `perf record --call-graph dwarf` (cpu-clock) into the run
#                    directory (implies E2E_KEEP; the CPU figures are then perf's)
#   E2E_WRAP         a command line to put in front of dialerd (e.g. valgrind --tool=callgrind)
set -euo pipefail

usage() {
  echo "usage: bash bench/e2e.sh BUILD_DIR [ROWS]" >&2
  exit 2
}
[[ $# -ge 1 && $# -le 2 ]] || usage
root=$(cd "$(dirname "$0")/.." && pwd)
build=$(cd "$root" && cd "$1" && pwd) || usage
rows=${2:-200000}
[[ $rows =~ ^[0-9]+$ ]] && ((rows >= 1 && rows <= 10000000)) || {
  echo "e2e: ROWS must be 1..10000000 (10M distinct +97150xxxxxxx numbers)" >&2
  exit 2
}
concurrency=${E2E_CONCURRENCY:-100000}
pool=${E2E_POOL:-64}
sync=${E2E_SYNC:-full}
# Generous: 2 s per 1,000 calls/s the concurrency allows (a started call holds its slot 1 s),
# at least 5 minutes.
cap=$((concurrency < 20000 ? concurrency : 20000))
timeout=${E2E_TIMEOUT:-$((300 + 2 * rows / cap))}

sim_bin="$build/sim/agentix-sim"
dialerd_bin="$build/daemon/dialerd"
for b in "$sim_bin" "$dialerd_bin"; do
  [[ -x $b ]] || { echo "e2e: $b is missing: build first (make build)" >&2; exit 1; }
done
command -v python3 >/dev/null || { echo "e2e: python3 is required (scripts/setup.sh)" >&2; exit 1; }

cores=$(nproc)
pin_sim=()
pin_dialer=()
if ((cores >= 2)) && command -v taskset >/dev/null; then
  pin_sim=(taskset -c 0)
  pin_dialer=(taskset -c 1)
else
  echo "e2e: warning: $cores core(s) or no taskset: the processes are not pinned" >&2
fi

run=$(mktemp -d "${E2E_DIR:-$build}/e2e-run.XXXXXX")
sim_pid=""
launcher_pid=""

stop_pid() {  # pid [grace seconds]: SIGTERM, then SIGKILL after the grace
  local pid=$1 grace=${2:-10}
  [[ -n $pid ]] && kill -0 "$pid" 2>/dev/null || return 0
  kill -TERM "$pid" 2>/dev/null || true
  for ((i = 0; i < grace * 10; i++)); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  kill -KILL "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
}

cleanup() {
  local status=$?
  trap - EXIT INT TERM
  if [[ -s $run/dialerd.pid ]]; then
    stop_pid "$(cat "$run/dialerd.pid")" 5
  fi
  stop_pid "$launcher_pid" 5
  stop_pid "$sim_pid" 30
  if [[ ${E2E_KEEP:-0} == 1 || ${E2E_PERF:-0} == 1 || -n ${E2E_WRAP:-} || $status -ne 0 ]]; then
    echo "e2e: run directory kept: $run" >&2
  else
    rm -rf "$run"
  fi
  exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# Unique valid AE mobile numbers +97150xxxxxxx, scattered over the 10M (an invertible
# multiply-add mod 10^7): CRM exports are not sorted by phone, so the indexes see random inserts.
awk -v rows="$rows" 'BEGIN {
  print "task_id,phone,first_name,crmContactId"
  for (i = 0; i < rows; i++) {
    n = (i * 3141593 + 1234567) % 10000000
    printf "T-%08d,+97150%07d,Customer %d,C-%d\n", i, n, i, 500000 + i
  }
}' > "$run/campaign.csv"

key="pk_bench_$(od -An -N8 -tx1 /dev/urandom | tr -d ' \n')"
printf '%s\n' "$key" > "$run/api.key"
chmod 600 "$run/api.key"
mkdir -p "$run/sim-cert"

"${pin_sim[@]}" "$sim_bin" --listen 127.0.0.1:0 --port-file "$run/sim.port" \
  --cert-dir "$run/sim-cert" --api-key-file "$run/api.key" --threads 1 --seed 42 \
  --ledger "$run/ledger.jsonl" --stats-file "$run/sim-stats.json" \
  --call-duration 1s..2s > "$run/sim.out" 2> "$run/sim.err" &
sim_pid=$!
for _ in $(seq 1 200); do
  [[ -s $run/sim.port ]] && break
  kill -0 "$sim_pid" 2>/dev/null || break
  sleep 0.05
done
if [[ ! -s $run/sim.port ]]; then
  echo "e2e: agentix-sim did not start:" >&2
  cat "$run/sim.err" >&2
  exit 1
fi
port=$(cat "$run/sim.port")

cat > "$run/dialerd.yaml" <<YAML
api:
  base_url: https://127.0.0.1:$port
  api_key_file: api.key
  ca_file: sim-cert/cert.pem
  pool: {connections: $pool, request_timeout: 10s, idle_timeout: 30s}
state_path: state.db
store: {synchronous: $sync}
slot_grace: 0s
# No webhooks here: a call's slot is freed by its deadline. The dial path is what is measured, so
# calls are not settled by session pulls (each would be one more request and store write).
settle: {attempts: 0}
trunks:
  bench-trunk:
    phone_number_id: 6f1c2a9e-0000-4000-8000-000000000001
    max_concurrent_calls: $concurrency
    calls_per_second: 1000000/s
    burst: 1000
campaigns: [campaign.yaml]
YAML
cat > "$run/campaign.yaml" <<YAML
id: bench
agent_id: d796c919-7ef3-413a-8bf1-351b6442953a
trunk: bench-trunk
csv: {path: campaign.csv, phone_column: phone, task_id_column: task_id, default_region: AE}
session_variables: {from_columns: [crmContactId, first_name], static: {offer: gold}}
max_duration: 1s
pacing: {calls_per_second: 1000000/s, burst: 1000}
YAML

wrap=()
if [[ ${E2E_PERF:-0} == 1 ]]; then
  wrap=(perf record -e cpu-clock -F 999 --call-graph dwarf,16384 -o "$run/perf.data" --)
elif [[ -n ${E2E_WRAP:-} ]]; then
  read -r -a wrap <<< "$E2E_WRAP"
fi

echo "== e2e: $rows rows, max_concurrent_calls $concurrency, pool $pool, synchronous $sync," \
  "agentix-sim on 127.0.0.1:$port (${pin_sim[*]:-unpinned}), dialerd (${pin_dialer[*]:-unpinned})"
echo "   load before: $(cut -d' ' -f1-3 /proc/loadavg)"

# The launcher runs dialerd as its child, timestamps its log lines, samples per-thread CPU from
# /proc, and takes the exact CPU time and peak RSS from wait4(2) (ru_maxrss is VmHWM).
python3 - "$run" "$timeout" "${pin_dialer[@]}" "${wrap[@]}" "$dialerd_bin" \
  --config "$run/dialerd.yaml" <<'PY' &
import json, os, select, signal, sys, time
run, timeout, argv = sys.argv[1], float(sys.argv[2]), sys.argv[3:]
tick = os.sysconf("SC_CLK_TCK")
r, w = os.pipe()
start = time.time()
pid = os.fork()
if pid == 0:
    os.close(r)
    os.dup2(os.open(os.devnull, os.O_RDONLY), 0)
    os.dup2(os.open(f"{run}/dialerd.out", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), 1)
    os.dup2(w, 2)
    os.execvp(argv[0], argv)
os.close(w)
with open(f"{run}/dialerd.pid.tmp", "w") as f:
    f.write(str(pid))
os.rename(f"{run}/dialerd.pid.tmp", f"{run}/dialerd.pid")
signal.signal(signal.SIGTERM, lambda *_: (os.kill(pid, signal.SIGKILL), sys.exit(1)))

threads = {}  # tid -> [cpu seconds, last seen]
def sample():
    try:
        tids = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return
    now = time.time()
    for tid in tids:
        try:
            with open(f"/proc/{pid}/task/{tid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if fields[0] == "Z":
            continue
        threads[int(tid)] = [(int(fields[11]) + int(fields[12])) / tick, now]

log = open(f"{run}/dialerd.log", "w")
buf = b""
status = rusage = None
timed_out = False
term_sent = 0.0
r_open = True
while True:
    ready, _, _ = select.select([r] if r_open else [], [], [], 0.1)
    if ready:
        chunk = os.read(r, 65536)
        buf += chunk
        while b"\n" in buf:
            line, buf = buf.split(b"\n", 1)
            log.write(f"{time.time():.3f} {line.decode(errors='replace')}\n")
        r_open = bool(chunk)
    sample()
    done, st, ru = os.wait4(pid, os.WNOHANG)
    if done == pid:
        status, rusage = st, ru
        break
    now = time.time()
    if not timed_out and now - start > timeout:
        timed_out = True
        term_sent = now
        os.kill(pid, signal.SIGTERM)
    elif timed_out and now - term_sent > 10:
        os.kill(pid, signal.SIGKILL)
end = time.time()
rest = os.read(r, 1 << 20) if r_open and select.select([r], [], [], 0)[0] else b""
for line in (buf + rest).split(b"\n"):
    if line:
        log.write(f"{end:.3f} {line.decode(errors='replace')}\n")
log.close()
code = os.waitstatus_to_exitcode(status)
last_sample = max((t[1] for t in threads.values()), default=end)
# The ingest thread returns when the CSV is stored, long before exit: it is the non-main thread
# that vanished first, at least 0.2 s before the last sample (a very short run may lump it in
# with the store writer, which lives until exit).
gone = sorted((seen, tid) for tid, (c, seen) in threads.items()
              if tid != pid and seen < last_sample - 0.2)
ingest_tid = gone[0][1] if gone else None
out = {
    "start": start, "end": end, "exit": code, "timed_out": timed_out,
    "utime": rusage.ru_utime, "stime": rusage.ru_stime, "maxrss_kib": rusage.ru_maxrss,
    "threads": [{"tid": tid, "cpu": c, "main": tid == pid, "ended_early": tid == ingest_tid}
                for tid, (c, seen) in sorted(threads.items())],
}
with open(f"{run}/launcher.json", "w") as f:
    json.dump(out, f)
PY
launcher_pid=$!
wait "$launcher_pid" || { echo "e2e: the launcher failed" >&2; exit 1; }
launcher_pid=""
rm -f "$run/dialerd.pid"

# The simulator's CPU so far (it has been idle since dialerd stopped), from /proc/PID/stat.
sim_cpu=$(awk -v tick="$(getconf CLK_TCK)" '{ sub(/^.*\) /, ""); print ($12 + $13) / tick }' \
  "/proc/$sim_pid/stat" 2>/dev/null || echo 0)
stop_pid "$sim_pid" 60
sim_pid=""
[[ -s $run/sim-stats.json ]] || { echo "e2e: agentix-sim wrote no stats" >&2; exit 1; }

python3 - "$run" "$rows" "$concurrency" "$pool" "$sync" "$sim_cpu" "${E2E_RESULT:-}" <<'PY'
import json, re, subprocess, sys, time
run, rows, concurrency, pool, sync, sim_cpu, result_path = sys.argv[1:]
sim_cpu = float(sim_cpu)
rows = int(rows)
L = json.load(open(f"{run}/launcher.json"))
S = json.load(open(f"{run}/sim-stats.json"))
placed = S["placed"]
dups = S["duplicates_by_task_id"] + S["duplicates_by_phone"]

ingest_end = None
rows_read = 0
progress = []  # (time, started)
for line in open(f"{run}/dialerd.log"):
    t, _, text = line.partition(" ")
    m = re.search(r"campaign bench: (\d+) rows read", text)
    if m:
        ingest_end, rows_read = float(t), int(m.group(1))
    m = re.search(r"campaign bench: (\d+) started \(", text)
    if m:
        progress.append((float(t), int(m.group(1))))

first = S["first_placed_ms"] / 1000.0
last = S["last_placed_ms"] / 1000.0
span = max(last - first, 1e-9)
cpu = L["utime"] + L["stime"]
ingest_cpu = sum(t["cpu"] for t in L["threads"] if t["ended_early"] and not t["main"])
main_cpu = sum(t["cpu"] for t in L["threads"] if t["main"])
other_cpu = sum(t["cpu"] for t in L["threads"] if not t["ended_early"] and not t["main"])

res = {
    "rows": rows, "concurrency": int(concurrency), "pool": int(pool), "synchronous": sync,
    "placed": placed, "duplicates": dups, "exit": L["exit"], "timed_out": L["timed_out"],
    "dialerd_wall_s": L["end"] - L["start"], "dialing_s": span, "calls_per_s": placed / span,
    "cpu_s": cpu, "user_s": L["utime"], "sys_s": L["stime"],
    "cpu_s_per_1000_calls": cpu / placed * 1000 if placed else None,
    "loop_thread_cpu_s": main_cpu, "ingest_thread_cpu_s": ingest_cpu,
    "writer_threads_cpu_s": other_cpu, "sim_cpu_s": sim_cpu,
    "peak_rss_mib": L["maxrss_kib"] / 1024.0,
    "max_active": S["max_active"], "responses_by_status": S["responses_by_status"],
}
if ingest_end is not None:
    res["ingest_s"] = ingest_end - L["start"]
    res["ingest_rows_per_s"] = rows_read / res["ingest_s"]
    # The progress line just after ingest ended splits dialing into "with" and "after" ingest.
    after = [p for p in progress if p[0] >= ingest_end]
    if after and ingest_end - first >= 2.0:
        t1, n1 = after[0]
        res["calls_per_s_during_ingest"] = n1 / (t1 - first)
        if last - t1 > 1.0 and placed > n1:
            res["calls_per_s_after_ingest"] = (placed - n1) / (last - t1)
rates = [(b[1] - a[1]) / (b[0] - a[0]) for a, b in zip(progress, progress[1:]) if b[0] > a[0]]
if rates:
    res["peak_1s_calls_per_s"] = max(rates)

model = "?"
for line in open("/proc/cpuinfo"):
    if line.startswith("model name"):
        model = line.split(":", 1)[1].strip()
        break
res["machine"] = {"nproc": int(subprocess.check_output(["nproc"]).strip()), "cpu": model,
                  "kernel": subprocess.check_output(["uname", "-r"], text=True).strip(),
                  "load": open("/proc/loadavg").read().split()[:3],
                  "date": time.strftime("%Y-%m-%d %H:%M %Z")}

def f(x, d=1):
    return "-" if x is None else f"{x:,.{d}f}"
print(f"  rows                       {rows:,}")
print(f"  calls placed               {placed:,}   (sim; statuses {S['responses_by_status']})")
print(f"  duplicates (task + phone)  {dups}")
print(f"  dialerd exit               {L['exit']}{'  TIMED OUT' if L['timed_out'] else ''}")
print(f"  dialing (first..last call) {f(span, 2)} s   -> {f(res['calls_per_s'], 0)} calls/s")
if "ingest_s" in res:
    print(f"  ingest (CSV -> store)      {f(res['ingest_s'], 2)} s from start "
          f"({f(res['ingest_rows_per_s'], 0)} rows/s, overlapping dialing)")
if "calls_per_s_during_ingest" in res:
    print(f"    calls/s during ingest    {f(res['calls_per_s_during_ingest'], 0)}")
if "calls_per_s_after_ingest" in res:
    print(f"    calls/s after ingest     {f(res['calls_per_s_after_ingest'], 0)}")
if "peak_1s_calls_per_s" in res:
    print(f"    best 1-s progress step   {f(res['peak_1s_calls_per_s'], 0)} calls/s")
print(f"  dialerd wall               {f(res['dialerd_wall_s'], 2)} s")
print(f"  dialerd CPU                {f(cpu, 2)} s (user {f(L['utime'], 2)},"
      f" sys {f(L['stime'], 2)}); threads: loop {f(main_cpu, 2)},"
      f" store writer {f(other_cpu, 2)}, ingest {f(ingest_cpu, 2)}")
per_call = (lambda x: x / placed * 1e6) if placed else (lambda x: None)
print(f"  CPU s per 1,000 calls      {f(res['cpu_s_per_1000_calls'], 4)}"
      f"   ({f(per_call(cpu), 1)} us/call;"
      f" without the ingest thread {f(per_call(cpu - ingest_cpu), 1)} us)")
print(f"  agentix-sim CPU            {f(sim_cpu, 2)} s"
      f" ({f(per_call(sim_cpu), 1)} us/call)")
print(f"  peak RSS                   {f(res['peak_rss_mib'], 1)} MiB")
print(f"  sim max active             {S['max_active']:,}")
m = res["machine"]
print(f"  machine                    {m['nproc']} x {m['cpu']}, Linux {m['kernel']}, "
      f"load {' '.join(m['load'])}, {m['date']}")
if result_path:
    json.dump(res, open(result_path, "w"))
ok = placed == rows and dups == 0 and L["exit"] == 0 and not L["timed_out"]
sys.exit(0 if ok else 1)
PY
