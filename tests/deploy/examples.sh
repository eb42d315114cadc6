#!/usr/bin/env bash
# The shipped example configuration loads in the real dialerd, as shipped and with every optional
# setting turned on.
#   examples.sh deploy/examples build/daemon/dialerd
#
# The examples mark an optional setting as `#key: value` (no space after the #), with its
# indented lines as `#  ...`; prose and alternatives are `# ...`. Turning every optional setting
# on therefore means: strip the # from each `#key` line and from the `#  ` lines right below it.
set -euo pipefail
examples=$1
dialerd=$2
if [[ ! -x $dialerd ]]; then
  echo "FAIL: $dialerd is not built (cmake --build BUILD --target dialerd)"
  exit 1
fi

dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
# What systemd's LoadCredential= would provide, and a call list with the columns the campaign
# maps (the loader checks the CSV header against the mapping).
mkdir "$dir/credentials"
printf 'ak_live_0123456789abcdef0123\n' >"$dir/credentials/agentix-api-key"
printf 'whsec_0123456789abcdef0123456789\n' >"$dir/credentials/webhook-signing-secret"
printf 'ctl_0123456789abcdef0123456789\n' >"$dir/credentials/control-token"
printf 'phone,task_id,crmContactId,first_name\n+971501234567,t-1,c-1,Amal\n' >"$dir/spring.csv"

# Copies that differ from the shipped files only where the machine differs: the CSV's folder and
# the credentials directory (any literal systemd path left in them; the secret paths use
# ${CREDENTIALS_DIRECTORY}, set below).
place() {
  sed -e "s#/srv/crm/spring.csv#$dir/spring.csv#" \
      -e "s#/run/credentials/dialerd.service/#$dir/credentials/#g" "$1" >"$2"
}
uncomment() {
  awk '
    /^[ ]*#[A-Za-z_]/     { sub(/#/, ""); on = 1; print; next }
    on && /^[ ]*#  /      { sub(/#/, ""); print; next }
                          { on = 0; print }' "$1"
}
check() {  # check NAME CONFIG: dialerd --check-config must accept CONFIG
  local status=0
  CREDENTIALS_DIRECTORY=$dir/credentials timeout 10 "$dialerd" --check-config --config "$2" \
    >"$dir/out" 2>&1 || status=$?
  sed "s#$dir/##g; s/^/  /" "$dir/out"
  if ((status != 0)); then
    echo "FAIL: $1: dialerd --check-config exited $status"
    exit 1
  fi
}

echo "check: the examples as shipped pass dialerd --check-config"
mkdir "$dir/shipped"
place "$examples/dialerd.yaml" "$dir/shipped/dialerd.yaml"
place "$examples/campaign.yaml" "$dir/shipped/campaign.yaml"
check "as shipped" "$dir/shipped/dialerd.yaml"

echo "check: with every optional setting uncommented they still pass"
mkdir "$dir/full"
for f in dialerd.yaml campaign.yaml; do
  uncomment "$examples/$f" >"$dir/$f.full"
  place "$dir/$f.full" "$dir/full/$f"
  echo "  $f: $(diff "$examples/$f" "$dir/$f.full" | grep -c '^>' || true) line(s) uncommented"
done
# The optional blocks the examples are meant to show; losing one (or the marker convention
# breaking) must fail here rather than pass with nothing uncommented.
for key in 'listen:' '  control: "' '  webhooks: "' 'control:' '  token_file:' 'webhooks:' \
           '  signing_secret_files:' 'reject_path:' '    reserved_slots:'; do
  grep -q "^$key" "$dir/full/dialerd.yaml" || { echo "FAIL: dialerd.yaml: no optional $key"; exit 1; }
done
for key in '  redial_on:' '  redial_after:' 'transcripts:' '  store: true'; do
  grep -q "^$key" "$dir/full/campaign.yaml" || { echo "FAIL: campaign.yaml: no optional $key"; exit 1; }
done
check "all optional settings on" "$dir/full/dialerd.yaml"

echo "check: a misspelt key in the same files is refused (the harness can fail)"
sed 's/^slot_grace:/slot_grace_typo:/' "$dir/full/dialerd.yaml" >"$dir/full/typo.yaml"
status=0
CREDENTIALS_DIRECTORY=$dir/credentials timeout 10 "$dialerd" --check-config \
  --config "$dir/full/typo.yaml" >"$dir/out" 2>&1 || status=$?
if ((status != 2)) || ! grep -q 'slot_grace_typo' "$dir/out"; then
  cat "$dir/out"
  echo "FAIL: expected exit status 2 naming slot_grace_typo, got $status"
  exit 1
fi
echo "  refused with status 2: $(sed "s#$dir/##g" "$dir/out" | head -1)"

# The unit falls back to SetCredential=<id>:<placeholder> when an optional secret's source file
# is missing. That placeholder must be refused wherever the YAML asks for the secret, or a
# forgotten file would leave the webhooks or the control API guarded by a known value.
unit=$examples/../dialerd.service
placeholders=$(sed -n 's/^SetCredential=//p' "$unit")
echo "check: the unit's fallback credentials are refused by the configuration that uses them"
[[ -n $placeholders ]] || { echo "FAIL: no SetCredential= in $unit"; exit 1; }
for entry in $placeholders; do
  id=${entry%%:*}
  value=${entry#*:}
  [[ -f $dir/credentials/$id ]] || { echo "FAIL: the examples do not use credential $id"; exit 1; }
  cp "$dir/credentials/$id" "$dir/saved"
  printf '%s' "$value" >"$dir/credentials/$id"
  status=0
  CREDENTIALS_DIRECTORY=$dir/credentials timeout 10 "$dialerd" --check-config \
    --config "$dir/full/dialerd.yaml" >"$dir/out" 2>&1 || status=$?
  mv "$dir/saved" "$dir/credentials/$id"
  if ((status != 2)) || ! grep -q "credentials/$id" "$dir/out"; then
    cat "$dir/out"
    echo "FAIL: $id holding the unit's placeholder \"$value\" was not refused (status $status)"
    exit 1
  fi
  echo "  $id=\"$value\": $(sed "s#$dir/##g" "$dir/out" | head -1)"
done

echo "check: no secret is written inline in the examples"
if grep -nE '^[^#]*\b(api_key|secret|token):' "$examples"/*.yaml; then
  echo "FAIL: an inline secret key in the examples"
  exit 1
fi
echo "PASS"
