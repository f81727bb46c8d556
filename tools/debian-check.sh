#!/usr/bin/env bash
# A newcomer's first minutes, checked for real: builds a minimal Debian 12 root (debootstrap
# --variant=minbase), copies the committed tree in with `git archive` (no .git, as from the
# archive), and there, as root in a chroot, runs the README's two set-up commands and every
# command of its "try" block (tools/readme-commands.sh), timing each. Prints a summary, also
# written to $CHECK_LOGS/summary.txt with every command's full output beside it.
#
#   sudo nice -n 10 tools/debian-check.sh
#
# Needs root, network access to the Debian mirror, ~3 GB in $CHECK_ROOT, and port 7700 free on
# this machine (the chroot shares its network). It takes the mirror from this machine's own apt
# sources (the repository of the `bookworm` suite); MIRROR=URL overrides. Environment:
#   CHECK_ROOT   the Debian root, removed and made again (/var/tmp/playbook-debian-check)
#   CHECK_LOGS   logs and summary ($CHECK_ROOT.logs)
#   CHECK_REV    what `git archive` copies (HEAD; uncommitted changes are not in it)
#   CHECK_TESTS  full: tools/test.sh as README says; release: PLAYBOOK_SANITIZERS=0 tools/test.sh
#                (its Release build and ctest only); none: skip it
#   CHECK_TEST_ARGS  ctest arguments passed to tools/test.sh (e.g. -E 'Dashboard')
#   CHECK_KEEP=1 keep the root afterwards (unmounted; default: removed)
# Exit status: 0 when every command exited 0.
set -euo pipefail
cd "$(dirname "$0")/.."
SRC=$PWD

ROOT=${CHECK_ROOT:-/var/tmp/playbook-debian-check}
LOGS=${CHECK_LOGS:-$ROOT.logs}
REV=${CHECK_REV:-HEAD}
TESTS=${CHECK_TESTS:-full}
SUITE=bookworm

die() { echo "debian-check: $*" >&2; exit 2; }
[ "$(id -u)" -eq 0 ] || die "needs root (debootstrap, chroot, mount)"
case "$TESTS" in full|release|none) ;; *) die "CHECK_TESTS is full, release or none" ;; esac
if (exec 3<>/dev/tcp/127.0.0.1/7700) 2>/dev/null; then
  die "something listens on 127.0.0.1:7700 here; the chroot's playbookd needs that port"
fi
git -C "$SRC" rev-parse --verify -q "$REV^{commit}" >/dev/null || die "no commit $REV (git archive copies a commit)"
if ! command -v debootstrap >/dev/null; then
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap >/dev/null
fi
MIRROR=${MIRROR:-$(apt-get indextargets --format '$(REPO_URI) $(RELEASE)' 2>/dev/null |
                   awk -v s="$SUITE" '$2 == s { print $1; exit }')}
[ -n "$MIRROR" ] || die "no $SUITE repository in this machine's apt sources: set MIRROR=URL"

mounts=(proc sys dev/pts dev/shm)
unmount_all() {
  local m
  for ((i = ${#mounts[@]} - 1; i >= 0; i--)); do
    m="$ROOT/${mounts[i]}"
    if mountpoint -q "$m" 2>/dev/null; then umount "$m" || umount -l "$m"; fi
  done
}
cleanup() {
  if [ -x "$ROOT/root/playbook/tools/run.sh" ] && mountpoint -q "$ROOT/proc" 2>/dev/null; then
    chroot "$ROOT" /bin/bash -c 'cd /root/playbook && tools/run.sh --stop' >/dev/null 2>&1 || true
  fi
  unmount_all
  if [ "${CHECK_KEEP:-0}" != "1" ] && [ -d "$ROOT" ] && ! grep -q " $ROOT/" /proc/mounts; then
    rm -rf "$ROOT"
  fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

unmount_all
grep -q " $ROOT/" /proc/mounts && die "something is still mounted under $ROOT"
rm -rf "$ROOT" "$LOGS"
mkdir -p "$LOGS"
summary="$LOGS/summary.txt"
failures=0

# `now` in seconds with tenths; `say` prints and records a summary line; `cpu LOG` the CPU
# seconds (user + sys) of everything a logged command ran, from its log's cpu-times line: on a
# machine shared with other work the wall times grow with the load, this much less.
now() { date +%s.%N; }
cpu() {
  awk 'match($0, /cpu-times: .*/) {  # after the last output, maybe on its line
         n = split(substr($0, RSTART + 11), t, " "); s = 0
         for (i = 1; i <= n; i++) { split(t[i], a, /[ms]/); s += a[1] * 60 + a[2] } }
       END { printf "%.0f", s }' "$1"
}
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }'; }
say() { echo "$*" | tee -a "$summary"; }

# Runs a command in the chroot as a newcomer's root shell would, from the tree's folder, logging
# every output line with its time since the start (for the phases of run.sh).
in_root() {
  local log=$1; shift
  local start
  start=$(now)
  set +e
  chroot "$ROOT" /usr/bin/env -i HOME=/root TERM=dumb LANG=C.UTF-8 \
    PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    /bin/bash -c "cd /root/playbook && $*
      rc=\$?; times >/tmp/.cpu-times; echo cpu-times: \$(cat /tmp/.cpu-times); exit \$rc" 2>&1 |
    while IFS= read -r line || [ -n "$line" ]; do  # also a last line without its newline
      printf '%s %s\n' "$(awk -v a="$start" -v b="$(date +%s.%N)" 'BEGIN { printf "%7.1f", b - a }')" "$line"
    done >"$log"
  local rc=${PIPESTATUS[0]}
  set -e
  return "$rc"
}

say "debian-check $(date -u '+%Y-%m-%d %H:%M UTC'): $(git -C "$SRC" rev-parse --short "$REV") on Debian $SUITE minbase, $(nproc) cores, mirror from this machine's apt sources"

t=$(now)
debootstrap --variant=minbase "$SUITE" "$ROOT" "$MIRROR" >"$LOGS/debootstrap.log" 2>&1 ||
  { tail -n 20 "$LOGS/debootstrap.log" >&2; die "debootstrap failed (log: $LOGS/debootstrap.log)"; }
say "  debootstrap minbase:          $(since "$t") s"

cp /etc/resolv.conf "$ROOT/etc/resolv.conf"
mount -t proc proc "$ROOT/proc"
mount -t sysfs sys "$ROOT/sys"
mkdir -p "$ROOT/dev/pts" "$ROOT/dev/shm"
mount -t devpts -o newinstance,ptmxmode=0666 devpts "$ROOT/dev/pts"
mount -t tmpfs -o mode=1777 shm "$ROOT/dev/shm"

# The tree as an archive carries it: no .git; export-subst writes the commit (.archive-commit).
git -C "$SRC" archive --format=tar --prefix=playbook/ "$REV" | tar -x -C "$ROOT/root"

# 1. tools/run.sh, from nothing installed to serving (the daemon answers /healthz with the sample
#    catalog loaded), then on to its return once the CLI is built.
run_cmd=$("$SRC/tools/readme-commands.sh" setup | sed -n 1p | sed 's/ *#.*//')
[ "$run_cmd" = "tools/run.sh" ] || die "the README's first set-up command is '$run_cmd', not tools/run.sh"
t=$(now)
if in_root "$LOGS/run.log" "$run_cmd"; then
  total=$(since "$t")
  # Phases from the log's timestamps: packages (until the first compile), the build of playbookd
  # (until the first ninja run's last step, its link), the start and the sample load (until the
  # "is serving" line), then the CLI's build while the daemon serves (until run.sh returns).
  first=$(awk '$2 ~ /^\[1\// { print $1; exit }' "$LOGS/run.log")
  linked=$(awk '$2 ~ /^\[[0-9]+\/[0-9]+\]$/ { split($2, a, /[\[\/\]]/); if (a[2] == a[3]) { print $1; exit } }' "$LOGS/run.log")
  serving=$(awk '/ is serving / { print $1; exit }' "$LOGS/run.log")
  say "  tools/run.sh to serving:      ${serving:-?} s (packages and configure ${first:-?} s, build of playbookd ${first:+$(awk -v a="$first" -v b="$linked" 'BEGIN { printf "%.1f", b - a }')} s, start and sample load $(awk -v a="${linked:-0}" -v b="${serving:-0}" 'BEGIN { printf "%.1f", b - a }') s)"
  say "  tools/run.sh returned:        $total s, $(cpu "$LOGS/run.log") CPU s (the CLI built while the daemon served)"
  grep -o 'playbookd .* is serving.*' "$LOGS/run.log" | head -n 1 | sed 's/^/    /' | tee -a "$summary"
else
  say "  tools/run.sh FAILED after $(since "$t") s; the end of $LOGS/run.log:"
  tail -n 30 "$LOGS/run.log" | tee -a "$summary"
  exit 1
fi

# 2. Every command of the README's "try" block, in order, against that daemon.
n=0
while IFS= read -r cmd; do
  n=$((n + 1))
  t=$(now)
  if in_root "$LOGS/try-$n.log" "$cmd" </dev/null; then rc=0; else rc=$?; failures=$((failures + 1)); fi
  say "  exit $rc in $(since "$t") s: ${cmd%%  *}"
  if [ "$rc" -ne 0 ]; then tail -n 10 "$LOGS/try-$n.log" | tee -a "$summary"; fi
done < <("$SRC/tools/readme-commands.sh" try)

# 3. tools/test.sh in the same tree: it must not recompile what run.sh built. The objects' times
#    before and after say whether it did.
if [ "$TESTS" != "none" ]; then
  test_cmd=$("$SRC/tools/readme-commands.sh" setup | sed -n 2p | sed 's/ *#.*//')
  [ "$test_cmd" = "tools/test.sh" ] || die "the README's second set-up command is '$test_cmd', not tools/test.sh"
  [ "$TESTS" = "release" ] && test_cmd="PLAYBOOK_SANITIZERS=0 $test_cmd"
  [ -n "${CHECK_TEST_ARGS:-}" ] && test_cmd="$test_cmd ${CHECK_TEST_ARGS}"
  objects() { (cd "$ROOT/root/playbook/build" && find . -name '*.o' -printf '%p %T@\n' | sort); }
  objects >"$LOGS/objects-before.txt"
  t=$(now)
  if in_root "$LOGS/test.log" "$test_cmd"; then rc=0; else rc=$?; failures=$((failures + 1)); fi
  total=$(since "$t")
  objects >"$LOGS/objects-after.txt"
  rebuilt=$(join "$LOGS/objects-before.txt" "$LOGS/objects-after.txt" | awk '$2 != $3' | wc -l)
  compiled=$(grep -c 'Building CXX object' "$LOGS/test.log" || true)
  say "  $test_cmd: exit $rc in $total s, $(cpu "$LOGS/test.log") CPU s; $compiled objects compiled, $rebuilt of run.sh's $(wc -l <"$LOGS/objects-before.txt") recompiled"
  grep -E 'tests passed|tests failed|^ *[0-9.]+ test: ' "$LOGS/test.log" | sed 's/^ *[0-9.]* /    /' | tee -a "$summary"
  if [ "$rc" -ne 0 ]; then
    grep -A 12 'The following tests FAILED' "$LOGS/test.log" | tee -a "$summary" || tail -n 20 "$LOGS/test.log" | tee -a "$summary"
  fi
fi

# 4. The README's stop command.
if in_root "$LOGS/stop.log" "tools/run.sh --stop"; then rc=0; else rc=$?; failures=$((failures + 1)); fi
say "  exit $rc: tools/run.sh --stop"

say "debian-check: $failures failed; logs in $LOGS"
[ "$failures" -eq 0 ]
