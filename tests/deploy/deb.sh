#!/usr/bin/env bash
# The Debian package: cpack builds it from the build tree, and what it holds is what the unit
# and the documentation promise.
#   deb.sh BUILD_DIR SOURCE_DIR HAVE_DIALERCTL(0|1)
#
# cpack packages the build tree as it is (packaging.cmake: CMAKE_SKIP_INSTALL_ALL_DEPENDENCY);
# it does not build. Under `make test` and `make deb` everything is built first.
set -euo pipefail
build=$(cd "$1" && pwd)
source=$2
have_dialerctl=$3

for tool in cpack dpkg-deb dpkg-shlibdeps; do
  if ! command -v "$tool" >/dev/null; then
    echo "SKIP: $tool is not installed (apt-get install cmake dpkg-dev)"
    exit 77
  fi
done
binaries=(dialerd)
if [[ $have_dialerctl == 1 ]]; then
  binaries+=(dialerctl)
fi

dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
failed=0
fail() {
  echo "  FAIL: $*"
  failed=1
}

echo "check: cpack -G DEB builds the package (into a scratch directory)"
start=$SECONDS
if ! (cd "$build" && timeout 60 cpack --config CPackConfig.cmake -G DEB -B "$dir/out") \
  >"$dir/cpack.log" 2>&1; then
  cat "$dir/cpack.log"
  echo "FAIL: cpack failed (are ${binaries[*]} built? cmake --build $build)"
  exit 1
fi
debs=("$dir"/out/*.deb)
if [[ ${#debs[@]} != 1 || ! -f ${debs[0]} ]]; then
  ls -l "$dir/out"
  echo "FAIL: expected exactly one .deb"
  exit 1
fi
deb=${debs[0]}
echo "  $(basename "$deb"), $(stat -c %s "$deb") bytes, in $((SECONDS - start)) s"

echo "check: control fields (dpkg-deb -I)"
dpkg-deb -I "$deb" | sed -n '/^ [A-Z][A-Za-z-]*:/p' | sed 's/^ /  /'
field() { dpkg-deb -f "$deb" "$1"; }
arch=$(dpkg --print-architecture)
[[ $(field Package) == dialerd ]] || fail "Package is '$(field Package)', not dialerd"
[[ $(field Architecture) == "$arch" ]] || fail "Architecture is '$(field Architecture)', not $arch"
[[ $(field Version) =~ ^[0-9]+\.[0-9]+\.[0-9]+ ]] || fail "Version '$(field Version)'"
[[ $(field Maintainer) =~ .+\<.+@.+\> ]] || fail "Maintainer '$(field Maintainer)' is not Name <email>"
[[ -n $(field Description) ]] || fail "no Description"
[[ $(basename "$deb") == "dialerd_$(field Version)_${arch}.deb" ]] || fail "file name $(basename "$deb")"
# The libraries the binaries link, found by dpkg-shlibdeps; ca-certificates for TLS verification.
depends=$(field Depends)
for dep in libc6 libssl3 libsqlite3-0 libyaml-cpp0.7 libphonenumber8 libsimdjson14 ca-certificates; do
  [[ $depends =~ (^|[ ,])$dep ]] || fail "Depends lacks $dep"
done
# Every shared library the built dialerd loads must come from a package the .deb depends on
# (directly or through one of them): here, check the direct ones ldd names.
# (Outputs are captured before grep: with pipefail, `cmd | grep -q` fails when grep exits first.)
linked=$(ldd "$build/daemon/dialerd")
for lib in libssl.so.3 libsqlite3.so.0 libyaml-cpp.so.0.7 libphonenumber.so.8 libsimdjson.so; do
  grep -q "$lib" <<<"$linked" || fail "dialerd no longer links $lib: update this test"
done
control_files=$(dpkg-deb --ctrl-tarfile "$deb" | tar -t)
if grep -qE 'conffiles|postinst|prerm|postrm|preinst' <<<"$control_files"; then
  fail "maintainer scripts or conffiles in the package (it should ship neither)"
fi

echo "check: layout (dpkg-deb -x into a scratch root)"
root=$dir/root
dpkg-deb -x "$deb" "$root"
for b in "${binaries[@]}"; do
  [[ -f $root/usr/bin/$b && -x $root/usr/bin/$b ]] || fail "/usr/bin/$b missing or not executable"
done
if [[ $have_dialerctl != 1 && -e $root/usr/bin/dialerctl ]]; then
  fail "/usr/bin/dialerctl packaged although the target does not exist"
fi
unit=$root/usr/lib/systemd/system/dialerd.service
cmp -s "$unit" "$source/deploy/dialerd.service" || fail "the unit differs from deploy/dialerd.service"
[[ $(stat -c %a "$unit") == 644 ]] || fail "the unit is mode $(stat -c %a "$unit"), not 644"
for f in dialerd.yaml campaign.yaml; do
  cmp -s "$root/usr/share/doc/dialerd/examples/$f" "$source/deploy/examples/$f" ||
    fail "examples/$f missing or different"
done
for f in README.md configuration.md operations.md; do
  [[ -s $root/usr/share/doc/dialerd/$f ]] || fail "/usr/share/doc/dialerd/$f missing"
done
cmp -s "$root/usr/share/dialerd/grafana/dialerd.json" "$source/deploy/grafana/dialerd.json" ||
  fail "the Grafana dashboard is missing or different"
# No live configuration: installing must not set anything up that dials.
if [[ -e $root/etc ]]; then
  fail "the package ships files under /etc: $(cd "$root" && find etc -type f | tr '\n' ' ')"
fi
# Everything else the package holds, so an addition is a decision, not an accident.
unexpected=$(cd "$root" && find . -type f | sort | grep -vxE \
  '\./usr/bin/(dialerd|dialerctl)|\./usr/lib/systemd/system/dialerd\.service|\./usr/share/doc/dialerd/(README|configuration|operations)\.md|\./usr/share/doc/dialerd/examples/(dialerd|campaign)\.yaml|\./usr/share/dialerd/grafana/dialerd\.json' ||
  true)
[[ -z $unexpected ]] || fail "unexpected files: $unexpected"
echo "  $(cd "$root" && find . -type f | wc -l) files"

echo "check: the packaged binaries run from the scratch root (system libraries)"
for b in "${binaries[@]}"; do
  status=0
  timeout 10 "$root/usr/bin/$b" --help >"$dir/help" 2>&1 || status=$?
  if ((status != 0)) || ! grep -q "usage: $b" "$dir/help"; then
    sed 's/^/    /' "$dir/help" | head -5
    fail "$b --help exited $status or printed no usage line"
  else
    echo "  $b --help: $(head -1 "$dir/help")"
  fi
done
# Stripped (CPACK_STRIP_FILES), as Debian ships binaries: no symbol table left.
for b in "${binaries[@]}"; do
  sections=$(readelf -S "$root/usr/bin/$b")
  if grep -q '\.symtab' <<<"$sections"; then
    fail "/usr/bin/$b is not stripped"
  fi
done

# The unit from the package, verified against the binary from the package at the path the unit
# names (verify wants ExecStart's binary to exist; /usr/bin/dialerd is inside the scratch root).
if command -v systemd-analyze >/dev/null; then
  echo "check: the packaged unit verifies against the packaged binary"
  mkdir "$dir/unit"
  sed "s#^ExecStart=/usr/bin/dialerd #ExecStart=$root/usr/bin/dialerd #" "$unit" \
    >"$dir/unit/dialerd.service"
  grep -q "^ExecStart=$root/usr/bin/dialerd " "$dir/unit/dialerd.service" ||
    fail "the unit's ExecStart does not name /usr/bin/dialerd"
  if ! timeout 20 systemd-analyze verify --man=no "$dir/unit/dialerd.service" \
    >"$dir/verify" 2>&1 || [[ -s $dir/verify ]]; then
    sed 's/^/    /' "$dir/verify"
    fail "systemd-analyze verify complained about the packaged unit"
  fi
fi

if ((failed)); then
  echo "FAIL"
  exit 1
fi
echo "PASS ($((SECONDS - start)) s)"
