#!/usr/bin/env bash
# The Debian package's test (CTest: package.deb): builds the .deb from the binaries already in
# BUILD_DIR (tools/package.sh, no compiling), then checks what dpkg would install and run:
# the file name and control fields (Depends computed by dpkg-shlibdeps), the files and their
# modes, the conffile, the maintainer scripts, that the packaged daemon starts on the packaged
# config, and `systemd-analyze verify` and `security` on the packaged unit.
#
#   tests/package/check_deb.sh BUILD_DIR
#
# Prints one line per failed check and exits 1 if any failed.
set -euo pipefail
SRC=$(cd "$(dirname "$0")/../.." && pwd)
BUILD_DIR=$(cd "${1:?usage: check_deb.sh BUILD_DIR}" && pwd)
work=$(mktemp -d "${TMPDIR:-/tmp}/playbook-deb-check.XXXXXX")
daemon_pid=""
cleanup() {
  if [ -n "$daemon_pid" ]; then kill -KILL "$daemon_pid" 2>/dev/null || true; fi
  rm -rf "$work"
}
trap cleanup EXIT

failures=0
fail() { echo "FAIL: $*"; failures=$((failures + 1)); }
pass() { echo "ok: $*"; }
# expect DESCRIPTION COMMAND...: the command must exit 0.
expect() { local what=$1; shift; if "$@"; then pass "$what"; else fail "$what"; fi; }

deb=$(BUILD_DIR="$BUILD_DIR" OUT_DIR="$work/out" PACKAGE_NO_BUILD=1 "$SRC/tools/package.sh" | tail -n 1)
echo "package: $deb ($(du -h "$deb" | cut -f1))"

# ---- Name and control fields.
version=$("$BUILD_DIR/bin/playbookd" --version | awk '{ print $2 }')
arch=$(dpkg --print-architecture)
expect "file name is playbook_${version}_${arch}.deb" [ "$(basename "$deb")" = "playbook_${version}_${arch}.deb" ]
field() { dpkg-deb -f "$deb" "$1"; }
expect "Package: playbook" [ "$(field Package)" = "playbook" ]
expect "Version: $version (playbookd --version)" [ "$(field Version)" = "$version" ]
expect "Architecture: $arch" [ "$(field Architecture)" = "$arch" ]
depends=$(field Depends)
echo "Depends: $depends"
# Computed from the binaries by dpkg-shlibdeps (versioned from the symbols used), plus adduser
# for postinst. RocksDB and faiss are linked statically: no runtime package.
for dep in adduser 'libc6 (>= ' 'libstdc++6 (>= ' 'libssl3 (>= ' 'libspdlog1.10' 'libtomlplusplus3' 'libgomp1'; do
  case ", $depends" in *", $dep"*) pass "Depends names ${dep% (>= }" ;; *) fail "Depends lacks '$dep': $depends" ;; esac
done
case "$depends" in *librocksdb*|*-dev*) fail "Depends names a static or -dev package: $depends" ;; esac
expect "Recommends: libopenblas0-openmp" [ "$(field Recommends)" = "libopenblas0-openmp" ]
expect "Maintainer set" [ -n "$(field Maintainer)" ]
expect "Description set" [ -n "$(field Description)" ]

# ---- Files: exactly these trees, owned by root, binaries executable and stripped.
dpkg-deb -c "$deb" >"$work/contents"
for path in ./usr/bin/playbookd ./usr/bin/playbook ./etc/playbook/playbook.toml \
            ./lib/systemd/system/playbook.service ./usr/share/doc/playbook/operations.md \
            ./usr/share/doc/playbook/playbook.example.toml; do
  expect "contains $path" grep -q " $path\$" "$work/contents"
done
unexpected=$(awk '{ print $6 }' "$work/contents" |
  grep -Ev '^\./$|^\./(usr/|usr/bin/|usr/bin/playbookd?|etc/|etc/playbook/|etc/playbook/playbook\.toml|lib/|lib/systemd/|lib/systemd/system/|lib/systemd/system/playbook\.service|usr/share/|usr/share/doc/|usr/share/doc/playbook/|usr/share/doc/playbook/[A-Za-z.-]+)$' || true)
expect "nothing else (not even /var/lib/playbook: postinst makes it)" [ -z "$unexpected" ]
[ -z "$unexpected" ] || echo "$unexpected"
expect "every file owned by root/root" [ -z "$(awk '$2 != "root/root"' "$work/contents")" ]
expect "binaries are -rwxr-xr-x" [ "$(awk '$6 ~ /^\.\/usr\/bin\/./ { print $1 }' "$work/contents" | sort -u)" = "-rwxr-xr-x" ]

dpkg-deb -x "$deb" "$work/root"
for b in playbookd playbook; do
  expect "$b is stripped" sh -c "file -b '$work/root/usr/bin/$b' | grep -q ', stripped'"
done
expect "packaged playbookd runs: --version says $version" \
  [ "$("$work/root/usr/bin/playbookd" --version)" = "playbookd $version" ]

# ---- Control area: the conffile and the maintainer scripts.
dpkg-deb -e "$deb" "$work/control"
expect "conffiles is /etc/playbook/playbook.toml" [ "$(cat "$work/control/conffiles")" = "/etc/playbook/playbook.toml" ]
for s in postinst prerm postrm; do
  expect "$s is executable" [ -x "$work/control/$s" ]
  expect "$s parses (sh -n)" sh -n "$work/control/$s"
done
expect "postinst makes the playbook system user" grep -q 'adduser --system --group --home /var/lib/playbook' "$work/control/postinst"
expect "postinst makes /var/lib/playbook" grep -q 'install -d -o playbook -g playbook -m 0750 /var/lib/playbook' "$work/control/postinst"
expect "postinst enables and starts the unit" grep -q 'deb-systemd-invoke "$action" playbook.service' "$work/control/postinst"

# ---- The packaged config: derived from the example, the data dir in /var/lib/playbook, and
# accepted by the packaged daemon (started on it with only the data dir and port overridden).
conf="$work/root/etc/playbook/playbook.toml"
expect "config: data_dir = \"/var/lib/playbook\"" grep -qx 'data_dir = "/var/lib/playbook"' "$conf"
expect "config: loopback only" grep -qx 'bind = "127.0.0.1"' "$conf"
expect "config: no test methods" grep -qx 'test_methods = false' "$conf"
"$work/root/usr/bin/playbookd" --config "$conf" --data-dir "$work/data" --port 0 \
  --ready-file "$work/ready.json" >"$work/daemon.log" 2>&1 &
daemon_pid=$!
for _ in $(seq 1 300); do
  grep -q '"status": "ok"' "$work/ready.json" 2>/dev/null && break
  kill -0 "$daemon_pid" 2>/dev/null || break
  sleep 0.1
done
expect "the packaged daemon serves on the packaged config" grep -q '"status": "ok"' "$work/ready.json"
kill -TERM "$daemon_pid" 2>/dev/null || true
rc=0; wait "$daemon_pid" || rc=$?
daemon_pid=""
expect "... and stops on SIGTERM with exit 0" [ "$rc" -eq 0 ]
[ "$failures" -eq 0 ] || cat "$work/daemon.log"

# ---- The unit. Its ExecStart names /usr/bin/playbookd and /etc/playbook/playbook.toml: both
# must be files of the package. `systemd-analyze verify` checks that ExecStart's binary exists
# and is executable, and the package is not installed here: it verifies a copy whose paths point
# into the extracted package instead (the only change), under the same file name.
unit="$work/root/lib/systemd/system/playbook.service"
expect "unit: ExecStart=/usr/bin/playbookd --config /etc/playbook/playbook.toml" \
  grep -qx 'ExecStart=/usr/bin/playbookd --config /etc/playbook/playbook.toml' "$unit"
for key in Type=notify ProtectSystem=strict 'ReadWritePaths=/var/lib/playbook -/var/backups/playbook' NoNewPrivileges=yes \
           Restart=on-failure User=playbook 'Environment=GLIBC_TUNABLES=glibc.malloc.tcache_count=1000'; do
  expect "unit: $key" grep -qx "$key" "$unit"
done
# TimeoutStopSec covers the drain: the config's shutdown_grace_ms, the 2 s close and 30 s for the flush.
stop_s=$(sed -n 's/^TimeoutStopSec=\([0-9]*\)s$/\1/p' "$unit")
grace_ms=$(sed -n 's/^shutdown_grace_ms = \([0-9]*\)$/\1/p' "$conf")
expect "unit: TimeoutStopSec (${stop_s:-?} s) >= shutdown_grace_ms (${grace_ms:-?} ms) + 32 s" \
  [ "$(( ${stop_s:-0} * 1000 ))" -ge "$(( ${grace_ms:-999999999} + 32000 ))" ]
mkdir -p "$work/units"
sed -e "s|^ExecStart=/usr/bin/playbookd --config /etc/playbook/playbook.toml\$|ExecStart=$work/root/usr/bin/playbookd --config $conf|" \
  "$unit" >"$work/units/playbook.service"
if systemd-analyze verify --man=no "$work/units/playbook.service" >"$work/verify.log" 2>&1 && [ ! -s "$work/verify.log" ]; then
  pass "systemd-analyze verify: no errors, no warnings"
else
  fail "systemd-analyze verify:"; cat "$work/verify.log"
fi
# The exposure score of the hardening, 0 (locked down) .. 10 (none); the unit's is 1.4. The
# threshold is in tenths: 20 fails above 2.0, e.g. when a protection is dropped by mistake.
if systemd-analyze security --offline=yes --threshold=20 "$work/units/playbook.service" >"$work/security.log" 2>&1; then
  pass "systemd-analyze security: $(grep -o 'Overall exposure level.*' "$work/security.log")"
else
  fail "systemd-analyze security: exposure above 2:"; cat "$work/security.log"
fi

echo "check_deb: $failures failed"
[ "$failures" -eq 0 ]
