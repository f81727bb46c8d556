#!/usr/bin/env bash
# The Debian package installed for real, by hand (not part of tools/test.sh: it needs root, the
# Debian mirror and a few minutes): makes a minimal Debian 12 root (debootstrap --variant=minbase),
# and there, in a chroot, installs the .deb with apt (which fetches its Depends), checks what the
# maintainer scripts made, runs the daemon as the unit would without systemd (user playbook, no new
# privileges, no capabilities, the root file system read-only but /var/lib/playbook and
# /var/backups/playbook, a private /tmp: in a mount namespace of its own), imports the sample
# catalog, recommends, backs up, stops it; upgrades to a rebuild with a higher version keeping an
# edit of the conffile, starts again on the same data; removes and purges, checking what stays.
#
#   sudo tools/deb-install-check.sh [DEB]   (default: build/playbook_*_<arch>.deb, the newest)
#
# Environment: CHECK_ROOT (/var/tmp/playbook-deb-install-check, removed and made again, and
# removed afterwards), MIRROR (this machine's bookworm repository), PORT (7794, on loopback: the
# chroot shares the network). Exit status 0 when every check passed.
set -euo pipefail
cd "$(dirname "$0")/.."
SRC=$PWD
ROOT=${CHECK_ROOT:-/var/tmp/playbook-deb-install-check}
PORT=${PORT:-7794}
die() { echo "deb-install-check: $*" >&2; exit 2; }
[ "$(id -u)" -eq 0 ] || die "needs root (debootstrap, chroot, mount)"
deb=${1:-$(ls -t build/playbook_*_"$(dpkg --print-architecture)".deb 2>/dev/null | head -n 1)}
[ -n "$deb" ] && [ -f "$deb" ] || die "no .deb: run tools/package.sh first, or name one"
deb=$(cd "$(dirname "$deb")" && pwd)/$(basename "$deb")
if (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null; then die "port $PORT is in use here: set PORT"; fi
command -v debootstrap >/dev/null || DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap >/dev/null
MIRROR=${MIRROR:-$(apt-get indextargets --format '$(REPO_URI) $(RELEASE)' 2>/dev/null |
                   awk '$2 == "bookworm" { print $1; exit }')}
[ -n "$MIRROR" ] || die "no bookworm repository in this machine's apt sources: set MIRROR=URL"

failures=0
fail() { echo "FAIL: $*"; failures=$((failures + 1)); }
expect() { local what=$1; shift; if "$@"; then echo "ok: $what"; else fail "$what"; fi; }
# A command in the chroot, as root with a clean environment.
in_root() { chroot "$ROOT" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin LANG=C.UTF-8 \
              DEBIAN_FRONTEND=noninteractive bash -c "$1"; }
# The playbookd processes running in the chroot (only this script starts any there).
daemons() { local p; for p in /proc/[0-9]*; do
  [ "$(cat "$p/comm" 2>/dev/null)" = playbookd ] && [ "$(readlink "$p/root" 2>/dev/null)" = "$ROOT" ] && echo "${p#/proc/}"
done; true; }
cleanup() {
  local pid
  for pid in $(daemons); do kill -KILL "$pid" 2>/dev/null || true; done
  for m in sys proc; do if mountpoint -q "$ROOT/$m" 2>/dev/null; then umount "$ROOT/$m"; fi; done
  if ! grep -q " $ROOT/" /proc/mounts; then rm -rf "$ROOT"; fi
}
trap cleanup EXIT
cleanup

echo "deb-install-check: $(basename "$deb") on Debian bookworm minbase ($MIRROR)"
debootstrap --variant=minbase bookworm "$ROOT" "$MIRROR" >/dev/null 2>&1 || die "debootstrap failed"
cp /etc/resolv.conf "$ROOT/etc/resolv.conf"
mount -t proc proc "$ROOT/proc"
mount -t sysfs sys "$ROOT/sys"
cp "$deb" "$ROOT/tmp/"
cp data/catalog/sample.jsonl "$ROOT/root/sample.jsonl"
name=$(basename "$deb")
version=$(dpkg-deb -f "$deb" Version)

# ---- Install.
expect "apt-get install ./$name (with its Depends from the mirror)" \
  in_root "apt-get update -qq && apt-get install -y -qq --no-install-recommends /tmp/$name >/tmp/install.log 2>&1"
expect "installed: $version" [ "$(in_root "dpkg-query -W -f='\${Status} \${Version}' playbook")" = "install ok installed $version" ]
expect "system user playbook, no login shell" in_root 'getent passwd playbook | grep -q ":/var/lib/playbook:/usr/sbin/nologin$"'
expect "/var/lib/playbook: playbook:playbook 0750" [ "$(in_root 'stat -c "%U:%G %a" /var/lib/playbook')" = "playbook:playbook 750" ]
expect "/var/backups/playbook: playbook:playbook 0750" [ "$(in_root 'stat -c "%U:%G %a" /var/backups/playbook')" = "playbook:playbook 750" ]
expect "/etc/playbook/playbook.toml: root:playbook 0640" [ "$(in_root 'stat -c "%U:%G %a" /etc/playbook/playbook.toml')" = "root:playbook 640" ]
expect "conffile registered" in_root 'dpkg-query -W -f="\${Conffiles}" playbook | grep -q /etc/playbook/playbook.toml'
expect "playbook.service enabled (multi-user.target.wants)" \
  [ "$(in_root 'readlink /etc/systemd/system/multi-user.target.wants/playbook.service')" = /lib/systemd/system/playbook.service ]
expect "playbookd --version is $version" [ "$(in_root 'playbookd --version')" = "playbookd $version" ]

# ---- Run it as the unit would, without systemd, in a mount namespace: the chroot's root
# read-only (ProtectSystem=strict) but the two ReadWritePaths, a private /tmp, user playbook,
# no new privileges and no capabilities. The command after it (the CLI) runs in the same namespace.
sandboxed() {
  unshare -m bash -c "set -e
    mount --make-rprivate /
    mount --rbind '$ROOT' '$ROOT'
    mount -o remount,bind,ro '$ROOT'
    for d in /var/lib/playbook /var/backups/playbook; do
      mount --bind '$ROOT'\$d '$ROOT'\$d; mount -o remount,bind,rw '$ROOT'\$d
    done
    mount -t tmpfs -o mode=1777 tmp '$ROOT/tmp'
    chroot '$ROOT' /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin LANG=C.UTF-8 bash -c '$1'"
}
run_daemon='umask 0027
  setpriv --reuid=playbook --regid=playbook --init-groups --no-new-privs --bounding-set=-all --inh-caps=-all \
    playbookd --config /etc/playbook/playbook.toml --port '$PORT' --ready-file /tmp/ready.json >/tmp/playbookd.log 2>&1 &
  pid=$!
  for i in $(seq 150); do grep -q "\"status\": \"ok\"" /tmp/ready.json 2>/dev/null && break; kill -0 $pid || break; sleep 0.2; done
  grep -q "\"status\": \"ok\"" /tmp/ready.json || { cat /tmp/playbookd.log; kill -KILL $pid; exit 1; }
  url=ws://127.0.0.1:'$PORT'/v1
  '
stop_daemon='
  kill -TERM $pid; rc=0; wait $pid || rc=$?
  tail -n 1 /tmp/playbookd.log; [ $rc -eq 0 ] && grep -q "storage flushed; bye" /tmp/playbookd.log'
first=$(sandboxed "$run_daemon"'
  touch /etc/playbook/x 2>/dev/null && echo "ROOT-WRITABLE"
  grep -Eq "^NoNewPrivs:\s+1$" /proc/$pid/status && grep -Eq "^CapEff:\s+0+$" /proc/$pid/status && echo "RESTRICTED"
  stat -c "DAEMON-UID %U" /proc/$pid
  cat /tmp/playbookd.log | head -n 1
  playbook import --url $url /root/sample.jsonl | tail -n 1
  playbook call --url $url recommend "{\"lead\":{\"id\":\"lead-42\",\"stage\":\"evaluation\",\"context\":\"客户说太贵了\"},\"k\":1}" | grep -o "\"asset_id\": \"[^\"]*\""
  playbook backup --url $url /var/backups/playbook/first | head -n 1
  playbook backup --url $url /srv/elsewhere 2>&1 | head -n 1
  '"$stop_daemon" 2>&1) && rc=0 || rc=$?
echo "$first" | sed 's/^/    /'
expect "the daemon served as playbook and stopped with exit 0" [ "$rc" -eq 0 ]
expect "... its root file system read-only, no new privileges, no capabilities" \
  sh -c "! echo \"\$1\" | grep -q ROOT-WRITABLE && echo \"\$1\" | grep -q RESTRICTED && echo \"\$1\" | grep -q 'DAEMON-UID playbook'" _ "$first"
expect "... data_dir=/var/lib/playbook" sh -c "echo \"\$1\" | grep -q 'data_dir=/var/lib/playbook '" _ "$first"
expect "... imported the sample catalog and recommended from it" sh -c "echo \"\$1\" | grep -q '106 upserted' && echo \"\$1\" | grep -q zh-objection-price-01" _ "$first"
expect "... backed up into /var/backups/playbook" in_root 'test -f /var/backups/playbook/first/BACKUP'
expect "... and could not write elsewhere (a backup to /srv)" sh -c "echo \"\$1\" | grep -q 'Read-only file system'" _ "$first"

# ---- Upgrade: the same package with a higher version (the commit part "zzzzzzz" sorts last),
# after an edit of the conffile.
next="${version%%+*}+zzzzzzz"
cpack_dir=$(mktemp -d)
cpack --config build/CPackConfig.cmake -G DEB -B "$cpack_dir" -D CPACK_PACKAGE_VERSION="$next" >/dev/null 2>&1 ||
  fail "cpack of $next (needs build/, as tools/package.sh made it)"
cp "$cpack_dir"/playbook_"$next"_*.deb "$ROOT/tmp/" 2>/dev/null || true
rm -rf "$cpack_dir"
in_root 'sed -i "s/^max_connections = 10000$/max_connections = 5000/" /etc/playbook/playbook.toml'
expect "upgrade to $next" in_root "apt-get install -y -qq --no-install-recommends /tmp/playbook_${next}_*.deb >/tmp/upgrade.log 2>&1"
expect "... installed: $next" [ "$(in_root "dpkg-query -W -f='\${Version}' playbook")" = "$next" ]
expect "... the conffile edit kept" in_root 'grep -qx "max_connections = 5000" /etc/playbook/playbook.toml'
expect "... the data kept" in_root 'test -d /var/lib/playbook/db && test -f /var/backups/playbook/first/BACKUP'
second=$(sandboxed "$run_daemon"'
  playbook call --url $url index.status | grep -o "\"assets\": [0-9]*"
  '"$stop_daemon" 2>&1) && rc=0 || rc=$?
echo "$second" | sed 's/^/    /'
expect "the upgraded daemon serves the same 106 assets and stops with exit 0" \
  sh -c "[ $rc -eq 0 ] && echo \"\$1\" | grep -q '\"assets\": 106'" _ "$second"

# ---- Remove, then purge.
expect "remove" in_root 'apt-get remove -y -qq playbook >/tmp/remove.log 2>&1'
expect "... binaries and unit gone" in_root '! test -e /usr/bin/playbookd && ! test -e /lib/systemd/system/playbook.service'
expect "... config kept" in_root 'test -f /etc/playbook/playbook.toml'
expect "purge" in_root 'apt-get purge -y -qq playbook >/tmp/purge.log 2>&1'
expect "... config gone, unit links gone" in_root '! test -e /etc/playbook && ! ls -R /etc/systemd/system | grep -q playbook'
expect "... data, backups and user kept" in_root 'test -d /var/lib/playbook/db && test -d /var/backups/playbook/first && getent passwd playbook >/dev/null'
expect "no playbookd left running" [ -z "$(daemons)" ]

echo "deb-install-check: $failures failed"
[ "$failures" -eq 0 ]
