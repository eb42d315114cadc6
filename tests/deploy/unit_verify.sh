#!/usr/bin/env bash
# systemd-analyze verify finds nothing to say about the unit.
#   unit_verify.sh deploy/dialerd.service build/daemon/dialerd
#
# verify also checks that ExecStart's binary exists and is executable, and /usr/bin/dialerd is
# not installed on a build machine. So the unit is verified as a copy whose ExecStart names the
# built binary instead, and the test proves that this is the only line that differs. The
# packaged layout (the binary really at /usr/bin/dialerd) is checked by deb.sh, which verifies
# the unit from the package against the binary from the package the same way.
set -euo pipefail
unit=$1
binary=$2

if ! command -v systemd-analyze >/dev/null; then
  echo "SKIP: systemd-analyze is not installed (apt-get install systemd)"
  exit 77
fi
if [[ ! -x $binary ]]; then
  echo "FAIL: $binary is not built (cmake --build BUILD --target dialerd)"
  exit 1
fi

dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
copy=$dir/dialerd.service  # verify wants the unit's real name
sed "s#^ExecStart=/usr/bin/dialerd #ExecStart=$binary #" "$unit" >"$copy"

echo "check: the copy differs from $unit in the ExecStart path only"
changed=$(diff "$unit" "$copy" | grep -c '^[<>]' || true)
if [[ $changed != 2 ]] || ! grep -q "^ExecStart=$binary --service " "$copy"; then
  diff "$unit" "$copy" || true
  echo "FAIL: expected exactly one changed line, ExecStart=/usr/bin/dialerd ... -> $binary"
  exit 1
fi

echo "check: systemd-analyze verify --man=no (any output on stderr is a failure)"
# verify exits 0 on unknown keys and bad values: what it prints is the verdict.
status=0
timeout 20 systemd-analyze verify --man=no "$copy" >"$dir/stdout" 2>"$dir/stderr" || status=$?
sed "s#$dir/##" "$dir/stderr"
if [[ -s $dir/stderr || $status != 0 ]]; then
  echo "FAIL: verify complained (exit status $status)"
  exit 1
fi

# The unit must run what the package installs, with the flags the daemon has.
echo "check: ExecStart runs dialerd --service --config /etc/dialerd/dialerd.yaml"
grep -qx 'ExecStart=/usr/bin/dialerd --service --config /etc/dialerd/dialerd.yaml' "$unit" || {
  echo "FAIL: unexpected ExecStart in $unit"
  exit 1
}
help=$("$binary" --help 2>&1)
grep -q -- '--service' <<<"$help" || {
  echo "FAIL: $binary --help does not mention --service"
  exit 1
}
echo "PASS"
