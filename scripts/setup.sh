#!/usr/bin/env bash
# Installs every Debian package dialerd needs to build, test and benchmark. Idempotent: a machine
# that already has them all does no apt work at all (dpkg is asked first), so `make test` stays fast.
set -euo pipefail

packages=(
  build-essential cmake ninja-build pkg-config ccache mold clang
  libboost-dev libboost-system-dev
  libssl-dev openssl
  libsimdjson-dev libyaml-cpp-dev libsqlite3-dev sqlite3
  libphonenumber-dev libhowardhinnant-date-dev
  libgtest-dev libgmock-dev libbenchmark-dev
  python3 procps
  prometheus
)

missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${db:Status-Status}' "$p" 2>/dev/null | grep -qx installed; then
    missing+=("$p")
  fi
done

if ((${#missing[@]} == 0)); then
  exit 0
fi

echo "setup: installing ${missing[*]}" >&2
sudo=""
if [[ $(id -u) -ne 0 ]]; then
  sudo="sudo"
fi
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
