#!/usr/bin/env bash
# The hardened unit's exposure, as systemd scores it offline: must be at most 2.0.
#   unit_security.sh deploy/dialerd.service
set -euo pipefail
unit=$1
# --threshold is on a x10 scale: 20 fails any unit that scores above 2.0.
threshold=20

if ! command -v systemd-analyze >/dev/null; then
  echo "SKIP: systemd-analyze is not installed (apt-get install systemd)"
  exit 77
fi
echo "check: systemd-analyze security --offline=yes --threshold=$threshold $unit"

out=$(mktemp)
trap 'rm -f "$out"' EXIT
status=0
timeout 20 systemd-analyze security --offline=yes --threshold="$threshold" "$unit" >"$out" 2>&1 ||
  status=$?

# The verdict line: "→ Overall exposure level for dialerd.service: 1.2 OK 🙂".
exposure=$(sed -n 's/.*Overall exposure level for [^:]*: \([0-9][0-9.]*\).*/\1/p' "$out")
if [[ -z $exposure ]]; then
  cat "$out"
  echo "FAIL: no overall exposure level in the output (exit status $status)"
  exit 1
fi
echo "overall exposure: $exposure (at most 2.0 required)"
echo "settings that still count against it:"
grep '✗' "$out" | sed 's/^/  /' || true
# Parse errors in the unit are printed as "file:line: ..." and the setting ignored, which would
# silently lower the protection the score claims.
if grep -E '\.service:[0-9]+:' "$out"; then
  echo "FAIL: systemd-analyze reported problems in the unit file (above)"
  exit 1
fi
if ((status != 0)); then
  echo "FAIL: systemd-analyze security exited $status: exposure above the threshold"
  exit 1
fi
# The same bound, checked on the parsed number too, in case the threshold is ever ignored.
if ! awk -v e="$exposure" 'BEGIN { exit !(e <= 2.0) }'; then
  echo "FAIL: exposure $exposure is above 2.0"
  exit 1
fi
echo "PASS"
