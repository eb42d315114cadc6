#!/usr/bin/env bash
# The main job, with nothing to configure: agentix-sim on 127.0.0.1, a generated 1,000-row
# campaign, dialerd at 50 calls/s and 60 concurrent, then a summary from both sides.
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

"$build/sim/agentix-sim" --listen 127.0.0.1:0 --port-file "$run/sim.port" \
  --cert-dir "$run/sim-cert" --api-key-file "$run/api.key" \
  --ledger "$run/ledger.jsonl" --stats-file "$run/sim-stats.json" \
  --call-duration 200ms..900ms > "$run/sim.out" 2> "$run/sim.err" &
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
# Until webhooks free slots (a later release), a started call holds its slot for
# max_duration + slot_grace.
slot_grace: 100ms
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
max_duration: 1s
YAML

echo "== dialerd: 1,000 rows at 50 calls/s, at most 60 concurrent, against agentix-sim on 127.0.0.1:$port"
status=0
"$build/daemon/dialerd" --config "$run/dialerd.yaml" || status=$?

kill -TERM "$sim_pid"
wait "$sim_pid" || true
trap - EXIT
echo
echo "== what agentix-sim observed"
python3 - "$run/sim-stats.json" <<'PY'
import json, sys
s = json.load(open(sys.argv[1]))
print(f"  calls placed            {s['placed']}")
print(f"  duplicates (task/phone) {s['duplicates_by_task_id']} / {s['duplicates_by_phone']}")
print(f"  most active at once     {s['max_active']}   (cap 60)")
print(f"  most starts in 100 ms   {s['max_starts_100ms']}   (burst 5 + 50/s x 0.1 s = 10)")
print(f"  most starts in 1 s      {s['max_starts_1s']}   (burst 5 + 50 = 55)")
PY
echo
echo "rejects: $run/state.db.rejects.jsonl   ledger: $run/ledger.jsonl   state: $run/state.db"
exit $status
