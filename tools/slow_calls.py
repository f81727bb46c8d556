#!/usr/bin/env python3
"""slow_calls.py SCHED.txt CALLS.txt THREADS.txt [THRESH_US] [-v]   (tools/trace_slow_calls.sh runs it)
SCHED.txt: perf script --ns -F comm,tid,cpu,time,event,trace of sched_switch and sched_waking, the
whole machine, recorded with -k mono. CALLS.txt: playbook-loadgen --trace (conn id sent_ns answered_ns). THREADS.txt: the daemon's thread ids,
one a line first (other daemons on the machine, other helpers' playbookd, count as other processes).
For the slow calls (>= THRESH_US, default 3000) against the others: what ran on the CPUs during the
call, by group (the daemon's threads by name, the load client, other processes); how long the
daemon's and the client's threads waited runnable (woken, not yet on a CPU); how long a worker slept
until a thread other than the io thread woke it (a lock or RocksDB's write group: "woken by pb-saver");
each slow call's main cause; the calls during which no other process ran; the saver's blocks."""
import re, sys, bisect, collections
args = [a for a in sys.argv[1:] if a != '-v']
sched, calls_f, lg = args[0], args[1], 'playbook-loadg'  # the client's comm, cut to 15 characters
ours = {int(l.split()[0]) for l in open(args[2]) if l.strip()}
thr = float(args[3]) if len(args) > 3 else 3000.0
sw = re.compile(r'\s*(.+?)\s+(\d+)\s+\[(\d+)\]\s+([\d.]+):\s+sched:sched_switch:.*prev_pid=(\d+).*prev_state=(\S+) ==> next_comm=(.+?) next_pid=(\d+)')
runs = collections.defaultdict(list)  # cpu -> [(start_ns, end_ns, comm, tid)]
cur = {}
waits = []  # (wake_ns, on_ns, comm, tid)
sleeps = []  # (sleep_ns, woken_ns, sleeper comm, waker comm)
asleep = {}  # tid -> (since, comm)
wkg = re.compile(r'\s*(.+?)\s+(\d+)\s+\[(\d+)\]\s+([\d.]+):\s+sched:sched_waking:\s+comm=(.+?) pid=(\d+)')
pending = {}
names = {}
for line in open(sched):
    m = sw.match(line)
    if m:
        cpu = int(m.group(3)); t = int(round(float(m.group(4)) * 1e9))
        nxt, nt = m.group(7), int(m.group(8))
        names[nt] = nxt
        pm = re.search(r'prev_comm=(.+?) prev_pid=(\d+).*prev_state=(\S+)', line)
        if pm and pm.group(3) in ('S', 'D'): asleep[int(pm.group(2))] = (t, pm.group(1))
        if cpu in cur:
            s, c, tid = cur[cpu]
            runs[cpu].append((s, t, c, tid))
        cur[cpu] = (t, nxt, nt)
        if nt in pending:
            waits.append((pending.pop(nt), t, nxt, nt))
        continue
    m = wkg.match(line)
    if m:
        t = int(round(float(m.group(4)) * 1e9)); tid = int(m.group(6))
        if tid in asleep:
            a, comm = asleep.pop(tid)
            sleeps.append((a, t, comm, m.group(1).strip(), tid, int(m.group(2))))
        pending.setdefault(tid, t)  # runnable from here until it is switched in
calls = []
for line in open(calls_f):
    c, i, s, e = line.split()
    calls.append((int(s), int(e)))
t_first = min(r[0][0] for r in runs.values() if r); t_last = max(r[-1][1] for r in runs.values() if r)
calls = [c for c in calls if c[0] >= t_first and c[1] <= t_last]
starts = {cpu: [r[0] for r in rs] for cpu, rs in runs.items()}
def group(comm, tid=None):
    if comm.startswith('pb-') or comm == 'playbookd' or comm.startswith('rocksdb'):
        return comm if tid is None or tid in ours else 'other processes'
    if comm == lg or comm.startswith('playbook-loadg'): return 'loadgen'
    if comm == 'swapper/0' or comm == 'swapper/1' or comm.startswith('swapper'): return 'idle'
    if comm.startswith('kworker') or comm.startswith('ksoftirq') or comm.startswith('jbd2') or comm.startswith('migration') or comm.startswith('rcu'): return 'kernel threads'
    if comm == 'perf': return 'perf'
    return 'other processes'
def during(s, e):
    out = collections.Counter()
    for cpu, rs in runs.items():
        i = max(0, bisect.bisect_right(starts[cpu], s) - 1)
        while i < len(rs) and rs[i][0] < e:
            a, b, comm, tid = rs[i]
            ov = min(b, e) - max(a, s)
            if ov > 0: out[group(comm, tid)] += ov
            i += 1
    return out
wstarts = sorted(waits); wkeys = [w[0] for w in wstarts]
def waited(s, e):
    out = collections.Counter()
    i = bisect.bisect_left(wkeys, s)
    while i < len(wstarts) and wstarts[i][0] < e:
        a, b, comm, tid = wstarts[i]
        g = group(comm, tid)
        if g.startswith('pb-') or g == 'playbookd' or g == 'loadgen': out[g] += min(b, e) - a
        i += 1
    return out
sleeps.sort(); skeys = [x[0] for x in sleeps]
def blocked(s, e):
    """pb-worker time asleep within the call, by the waker (not the io thread: a worker waiting for a request)."""
    out = collections.Counter()
    i = max(0, bisect.bisect_left(skeys, s - 2_000_000_000))
    while i < len(sleeps) and sleeps[i][0] < e:
        a, b, comm, waker, tid, wtid = sleeps[i]
        i += 1
        if comm != 'pb-worker' or tid not in ours or b <= s: continue
        g = group(waker, wtid)
        if g in ('playbookd', 'loadgen', 'other processes'): continue
        out['woken by ' + g] += min(b, e) - max(a, s)
    return out
lat = sorted((e - s) / 1e3 for s, e in calls)
p = lambda q: lat[min(len(lat) - 1, int(q * len(lat)))]
print(f"calls in the trace: {len(calls)}; p50 {p(.5):.0f} us p99 {p(.99):.0f} us; slow (>= {thr:.0f} us): {sum(1 for x in lat if x >= thr)}")
slow = [c for c in calls if (c[1] - c[0]) / 1e3 >= thr]
fast = [c for c in calls if (c[1] - c[0]) / 1e3 < thr]
def summary(cs, label):
    tot = collections.Counter(); wt = collections.Counter(); dur = 0
    for s, e in cs:
        tot.update(during(s, e)); wt.update(waited(s, e)); wt.update(blocked(s, e)); dur += e - s
    n = max(1, len(cs))
    print(f"\n{label}: {len(cs)} calls, mean {dur / n / 1e3:.0f} us; per call, us of CPU time on the 2 CPUs by group:")
    for g, v in tot.most_common(): print(f"  {g:20s} {v / n / 1e3:8.0f}")
    print("  runnable waits (woken, not on a CPU), and workers blocked by waker, per call:")
    for g, v in wt.most_common(): print(f"  {g:20s} {v / n / 1e3:8.0f}")
summary(fast, "other calls"); summary(slow, "slow calls")
if '-v' in sys.argv:
    print("\nthe slowest 15:")
    for s, e in sorted(slow, key=lambda c: c[0] - c[1])[:15]:
        d = during(s, e); w = waited(s, e); w.update(blocked(s, e))
        print(f"  {(e - s) / 1e3:7.0f} us at {s / 1e9:.3f}: " + ", ".join(f"{g} {v / 1e3:.0f}" for g, v in d.most_common(6)) +
              " | waits: " + ", ".join(f"{g} {v / 1e3:.0f}" for g, v in w.most_common(4)))
# Each slow call's main cause: the largest of the worker blocked by the saver (a lock or the RocksDB
# write group the saver leads), blocked by the syncer, by RocksDB threads, or threads runnable and
# waiting for a CPU (who held the CPUs: see the table).
causes = collections.Counter(); causes_t = collections.Counter()
for s, e in slow:
    w = waited(s, e); b = blocked(s, e)
    cands = {'blocked by pb-saver': b.get('woken by pb-saver', 0), 'blocked by pb-syncer': b.get('woken by pb-syncer', 0),
             'blocked by rocksdb': sum(v for k, v in b.items() if 'rocksdb' in k),
             'runnable, waiting for a CPU': sum(w.values())}
    top = max(cands, key=cands.get)
    if cands[top] < 0.3 * (e - s): top = 'none over 30% of the call'
    causes[top] += 1; causes_t[top] += e - s
print("\nslow calls by main cause (count, their share of the slow calls' time):")
tt = sum(causes_t.values()) or 1
for k, v in causes.most_common(): print(f"  {k:32s} {v:6d}  {100 * causes_t[k] / tt:5.1f}%")
# The calls during which no other process ran (less than 5% of the call's time on either CPU): this
# box's other load left out, what the daemon and the client do alone.
quiet = [c for c in calls if during(*c).get('other processes', 0) + during(*c).get('perf', 0) < 0.05 * (c[1] - c[0])]
ql = sorted((e - s) / 1e3 for s, e in quiet)
if ql:
    qp = lambda q: ql[min(len(ql) - 1, int(q * len(ql)))]
    print(f"\nquiet calls (no other process on a CPU): {len(quiet)} of {len(calls)}; p50 {qp(.5):.0f} us, p90 {qp(.9):.0f}, p99 {qp(.99):.0f}, p99.9 {qp(.999):.0f}; over {thr:.0f} us: {sum(1 for x in ql if x >= thr)}")
    qs = [c for c in quiet if (c[1] - c[0]) / 1e3 >= thr]
    summary(qs, "quiet slow calls")
    qf = [c for c in quiet if (c[1] - c[0]) / 1e3 < thr]
    summary(qf, "quiet other calls")
# Every call a worker spent asleep in until the saver woke it (any length), by the block's length.
bl = []
for s, e in calls:
    b = blocked(s, e).get('woken by pb-saver', 0)
    if b > 0: bl.append(b / 1e3)
bl.sort()
print(f"\ncalls blocked by the saver: {len(bl)}; block length (us) " +
      (f"p50 {bl[len(bl) // 2]:.0f}, max {bl[-1]:.0f}; under 1 ms {sum(1 for x in bl if x < 1000)}, 1-3 ms {sum(1 for x in bl if 1000 <= x < 3000)}, 3-30 ms {sum(1 for x in bl if 3000 <= x < 30000)}, over 30 ms {sum(1 for x in bl if x >= 30000)}" if bl else ""))
