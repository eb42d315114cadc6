#!/usr/bin/env bash
# Bounded memory (DESIGN.md invariant 4): dialerd's peak RSS for a 1,000,000-row campaign and a
# 10,000-row one, both at concurrency 1,000 (rate not binding, 64 connections, synchronous FULL),
# through bench/e2e.sh. Target: the large one at most 64 MiB and within 10 % of the small one.
#
#   bash bench/rss.sh BUILD_DIR [BIG_ROWS] [SMALL_ROWS]     (defaults 1000000 and 10000)
#
# A started call holds its slot for max_duration (1 s) and slot_grace (0 s), so concurrency 1,000
# dials about 1,000 calls/s: the 1M-row run takes about 17 minutes.
set -euo pipefail
if [[ $# -lt 1 || $# -gt 3 ]]; then
  echo "usage: bash bench/rss.sh BUILD_DIR [BIG_ROWS] [SMALL_ROWS]" >&2
  exit 2
fi
root=$(cd "$(dirname "$0")/.." && pwd)
build=$1
big=${2:-1000000}
small=${3:-10000}
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT

for rows in "$small" "$big"; do
  E2E_CONCURRENCY=1000 E2E_POOL=64 E2E_RESULT="$out/$rows.json" \
    bash "$root/bench/e2e.sh" "$build" "$rows"
  echo
done

python3 - "$out/$small.json" "$out/$big.json" <<'PY'
import json, sys
s, b = (json.load(open(p)) for p in sys.argv[1:])
ratio = b["peak_rss_mib"] / s["peak_rss_mib"]
print(f"== peak RSS at concurrency {b['concurrency']:,}, pool {b['pool']}")
for r in (s, b):
    print(f"  {r['rows']:>10,} rows   {r['peak_rss_mib']:6.1f} MiB   ({r['placed']:,} placed,"
          f" {r['calls_per_s']:,.0f} calls/s, max active {r['max_active']:,})")
ok = b["peak_rss_mib"] <= 64 and ratio <= 1.10
print(f"  ratio big/small    {ratio:.3f}   target: big <= 64 MiB and ratio <= 1.10 ->"
      f" {'met' if ok else 'NOT met'}")
PY
