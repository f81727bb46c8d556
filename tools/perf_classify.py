#!/usr/bin/env python3
"""Splits perf samples of playbookd into the rows of docs/benchmarks.md's per-call tables.

Usage: perf_classify.py PERF_SCRIPT.txt CALLS TICKS [PERF_SCRIPT.txt CALLS TICKS ...]
(the text of `perf script`, the calls answered during the load, the daemon's CPU ticks over it:
tools/perf_daemon.sh prints both). Each sample goes to the first row one of its frames matches,
top to bottom; rows with a third field count only frames called from a frame matching it."""
import sys, re
# each sample goes to the first row whose pattern matches a frame of its stack (leaf first in perf script)
rows = [
 ("faiss graph search (AnnIndex::Search)", r"AnnIndex::Search", None),
 ("rest of the retrieval (filter bits, top-k, hits)", r"AssetIndex::Search|SearchLocked|EngineImpl::SearchItems|EngineImpl::Search\b", None),
 ("ranking counters (RankingStats)", r"RankingStats", "Recommend"),
 ("exploration draws (Posterior, BetaDraw, Effectiveness)", r"BetaDraw|Posterior|Effectiveness|mersenne|mt19937", "Recommend"),
 ("handing the shown events over (RecordShown)", r"RecordShown|Enqueue", "Recommend"),
 ("MMR dot products (simd::Dot in Recommend)", r"simd::", "Recommend"),
 ("Recommend: malloc/free", r"^(\S+ )?(_int_malloc|malloc|_int_free|free|cfree|__GI___libc_malloc|__GI___libc_free|tcache_get|tcache_put|malloc_consolidate|operator new|operator delete)", "Recommend"),
 ("Recommend: sort / nth_element", r"__introsort|__insertion_sort|__unguarded|nth_element|__adjust_heap|__introselect|__move_median", "Recommend"),
 ("Recommend: strings (reasons, ids, events)", r"basic_string|to_string|__to_chars|Readable|Percent|ScriptLanguage|memcpy|memmove", "Recommend"),
 ("rest of Recommend (ranking loop, MMR, hash maps)", r"EngineImpl::Recommend", None),
 ("feedback writer and saver threads", r"FeedbackStore::|Derived::|rocksdb::", None),
 ("request parse (ParseFrame)", r"ParseFrame|ParseJsonFast", None),
 ("handler: params, answer JSON, Serialize", r"AddCatalogMethods|AddFeedbackMethods|Serialize|MakeResult|Dispatcher::", None),
]
def frames_of(stack):
    out = []
    for f in stack:
        parts = f.split(None, 1)
        out.append(parts[1] if len(parts) > 1 else f)
    return out
def classify(path):
    counts = {r[0]: 0 for r in rows}; other = 0; total = 0; stack = []
    def flush():
        nonlocal other, total
        if not stack: return
        total += 1
        fr = frames_of(stack)
        for name, pat, within in rows:
            if within is not None:
                # the frame must sit below (leafward of) a frame matching `within`
                idx = next((i for i, f in enumerate(fr) if re.search(within, f)), None)
                if idx is None: continue
                cand = fr[:idx]
                if name.startswith("Recommend: malloc"):
                    cand = fr[:1]
                elif name.startswith("Recommend: strings"):
                    cand = fr[:idx]
                if any(re.search(pat, f) for f in cand):
                    counts[name] += 1; return
            elif any(re.search(pat, f) for f in fr):
                counts[name] += 1; return
        other += 1
    for line in open(path, errors="replace"):
        if line and not line[0].isspace() and line.strip():
            flush(); stack = []
        elif line.strip():
            stack.append(line.strip())
    flush()
    return counts, other, total
args = sys.argv[1:]
res = []
for i in range(0, len(args), 3):
    path, calls, ticks = args[i], int(args[i+1]), int(args[i+2])
    c, o, t = classify(path); us = ticks * 1e4 / calls
    res.append((path, c, o, t, us))
print("| us of daemon CPU per call | " + " | ".join(r[0] for r in res) + " |")
for name, _, _ in rows:
    print(f"| {name} | " + " | ".join(f"{r[1][name]*r[4]/r[3]:.0f} ({100*r[1][name]/r[3]:.1f}%)" for r in res) + " |")
print("| transport, scheduling, kernel, other | " + " | ".join(f"{r[2]*r[4]/r[3]:.0f} ({100*r[2]/r[3]:.1f}%)" for r in res) + " |")
print("| all (samples) | " + " | ".join(f"{r[4]:.0f} ({r[3]})" for r in res) + " |")
