#!/usr/bin/env bash
# The main job, with nothing to configure: agentix-sim on 127.0.0.1, a generated 1,000-row
# campaign, dialerd at 50 calls/s and 60 concurrent, signed webhooks back from the simulator
# (session.created / session.ended, some lost and some repeated), no_answer and busy redialed,
# then a summary from both sides and the results exported as CSV.
set -euo pipefail
build=${1:-build}
root=$(cd "$(dirname "$0")/.." && pwd)
build=$(cd "$root" && cd "$build" && pwd)
run="$root/demo-run"
rm -rf "$run"
mkdir -p "$run/sim-cert"

# 1,000 data rows: 986 good ones, plus what real CRM exports contain — invalid and premium-rate
# numbers, a duplicate number, a duplicate task id, a short row.
awk 'BEGIN {
  print "task_id,phone,first_name,crmContactId"
  for (i = 1; i <= 986; i++) printf "T-%06d,050%07d,Customer %d,C-%d\n", i, 1000000 + i, i, 500000 + i
  for (i = 1; i <= 5; i++)   printf "BAD-%d,12345,Broken %d,C-9%d\n", i, i, i
  for (i = 1; i <= 3; i++)   printf "PREM-%d,+44 909 879 000%d,Premium %d,C-8%d\n", i, i, i, i
  printf "DUP-PHONE,0501000001,Twin,C-70\n"
  printf "T-000002,0509999999,Same id,C-71\n"
  printf "SHORT-1,0501234000\n"
  printf "T-QUOTED,\"050 555 0000\",\"Smith, \"\"Jo\"\"\",C-72\n"
  printf "T-ARABIC,0505550001,ليلى,C-73\n"
  printf "T-EMPTY,,Nobody,C-74\n"
}' > "$run/campaign.csv"

key="pk_demo_$(od -An -N8 -tx1 /dev/urandom | tr -d ' \n')"
printf '%s\n' "$key" > "$run/api.key"
chmod 600 "$run/api.key"
printf 'whsec_demo_%s\n' "$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')" > "$run/webhook-signing.key"
chmod 600 "$run/webhook-signing.key"
# A free loopback port for dialerd's webhook listener (the simulator must know it first).
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
hook_port=$(free_port)
ctl_port=$(free_port)

"$build/sim/agentix-sim" --listen 127.0.0.1:0 --port-file "$run/sim.port" \
  --cert-dir "$run/sim-cert" --api-key-file "$run/api.key" \
  --ledger "$run/ledger.jsonl" --stats-file "$run/sim-stats.json" \
  --call-duration 200ms..900ms \
  --end-reasons completed=0.7,no_answer=0.15,busy=0.1,voicemail=0.05 \
  --webhook-url "http://127.0.0.1:$hook_port/webhooks/agentix" \
  --webhook-signing-secret-file "$run/webhook-signing.key" \
  --webhook-lose 0.02 --webhook-duplicate 0.05 --webhook-delay 0..300ms \
  --webhook-log "$run/webhooks.jsonl" > "$run/sim.out" 2> "$run/sim.err" &
sim_pid=$!
trap 'kill "$sim_pid" 2>/dev/null || true' EXIT
for _ in $(seq 1 200); do
  [[ -s "$run/sim.port" ]] && break
  sleep 0.05
done
[[ -s "$run/sim.port" ]] || { echo "agentix-sim did not start:"; cat "$run/sim.err"; exit 1; }
port=$(cat "$run/sim.port")

cat > "$run/dialerd.yaml" <<YAML
api:
  base_url: https://127.0.0.1:$port
  api_key_file: api.key
  ca_file: sim-cert/cert.pem
  pool: {connections: 16, request_timeout: 10s, idle_timeout: 30s}
state_path: state.db
# A call whose session.ended never comes frees its slot after max_duration + slot_grace and is
# settled by pulling its session.
slot_grace: 1s
listen: {webhooks: "127.0.0.1:$hook_port", control: "127.0.0.1:$ctl_port"}
webhooks:
  path: /webhooks/agentix
  allow_from: [127.0.0.1/32, "::1/128"]
  signing_secret_files: webhook-signing.key
settle: {attempts: 4, first_delay: 500ms, max_delay: 2s}
trunks:
  demo-trunk: {phone_number_id: 6f1c2a9e-0000-4000-8000-000000000001, max_concurrent_calls: 60, calls_per_second: 50/s, burst: 5}
campaigns: [demo-campaign.yaml]
YAML
cat > "$run/demo-campaign.yaml" <<YAML
id: demo
agent_id: d796c919-7ef3-413a-8bf1-351b6442953a
trunk: demo-trunk
csv: {path: campaign.csv, phone_column: phone, task_id_column: task_id, default_region: AE}
session_variables: {from_columns: [crmContactId, first_name], static: {offer: gold}}
max_duration: 2s
retry: {max_attempts: 3, redial_on: [no_answer, busy], redial_after: 2s}
YAML

echo "== dialerd: 1,000 rows at 50 calls/s, at most 60 concurrent, against agentix-sim on 127.0.0.1:$port;"
echo "   webhooks on 127.0.0.1:$hook_port (HMAC-signed; 2% lost, 5% repeated); no_answer/busy redialed after 2 s"
status=0
"$build/daemon/dialerd" --config "$run/dialerd.yaml" &
dialerd_pid=$!
# Mid-run, what an operator sees (metrics are on the same listener: /metrics).
sleep 8
if [[ -x "$build/daemon/dialerctl" ]]; then
  echo
  echo "== dialerctl status (8 s in)"
  "$build/daemon/dialerctl" --control "http://127.0.0.1:$ctl_port" status || true
  echo
fi
wait "$dialerd_pid" || status=$?

kill -TERM "$sim_pid"
wait "$sim_pid" || true
trap - EXIT
echo
echo "== what agentix-sim observed"
python3 - "$run/sim-stats.json" <<'PY'
import json, sys
s = json.load(open(sys.argv[1]))
print(f"  calls placed            {s['placed']}")
print(f"  repeat calls of a task  {s['duplicates_by_task_id']}   (the redials after no_answer / busy, each a new attempt)")
print(f"  most active at once     {s['max_active']}   (cap 60)")
print(f"  most starts in 100 ms   {s['max_starts_100ms']}   (burst 5 + 50/s x 0.1 s = 10)")
print(f"  most starts in 1 s      {s['max_starts_1s']}   (burst 5 + 50 = 55)")
w = s.get('webhooks', {})
print(f"  webhooks delivered      {w.get('delivered', 0)}  (lost on purpose {w.get('lost', 0)}, repeated {w.get('duplicated', 0)})")
PY
if "$build/daemon/dialerd" export --help >/dev/null 2>&1; then
  "$build/daemon/dialerd" export --config "$run/dialerd.yaml" --campaign demo --format csv \
    --output "$run/results.csv"
  echo
  echo "== results ($run/results.csv), first lines"
  head -4 "$run/results.csv" | cut -c1-160
fi
echo
echo "rejects: $run/state.db.rejects.jsonl   ledger: $run/ledger.jsonl   state: $run/state.db"
exit $status
