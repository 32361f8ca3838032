#!/usr/bin/env python3
"""The malloc workloads of a bench/runner.py results file, relative to one
allocator (by default the drop-in, goalloc-preload).

Usage: python3 tools/ratios_to.py bench/results/latest.json [BASE]

runner.py takes every malloc ratio to the statically linked goalloc (the
ga_* API with the collector off). The drop-in, libgoalloc-override.so under
LD_PRELOAD, is what a program that replaces its malloc runs, and it is not
the same heap: it keeps glibc's 16-byte alignment and has the free cache
(src/mtcache.c). This prints, from the same run's samples, each peer's
time and peak RSS over BASE's: per round, then the median over rounds
(runner.py's method), as a Markdown table, and the geometric mean of the
time and RSS medians over the workloads each allocator ran (the linked
goalloc cannot run python). Above 1: BASE is faster or smaller.
"""
import json
import math
import statistics
import sys


def main():
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    data = json.load(open(sys.argv[1]))
    base = sys.argv[2] if len(sys.argv) > 2 else "goalloc-preload"
    allocs = [a["name"] for a in data["allocators"] if a["kind"] == "malloc"]
    if base not in allocs:
        sys.exit("ratios_to: no allocator %r in %s" % (base, sys.argv[1]))
    peers = [a for a in allocs if a != base]
    workloads = [w["name"] for w in data["workloads"] if w["kind"] == "malloc"]
    runs = {}
    for s in data["samples"]:
        if s.get("wall_s") is None or s["workload"] not in workloads:
            continue
        runs.setdefault((s["workload"], s["allocator"]), {})[s["round"]] = s

    def ratio(w, a, key):
        mine, ref = runs.get((w, a), {}), runs.get((w, base), {})
        per_round = [mine[r][key] / ref[r][key] for r in mine
                     if r in ref and ref[r][key]]
        return statistics.median(per_round) if per_round else None

    print("| workload | " + " | ".join(peers) + " |")
    print("|---" * (len(peers) + 1) + "|")
    cells = {}
    for w in workloads:
        row = []
        for a in peers:
            t, m = ratio(w, a, "wall_s"), ratio(w, a, "maxrss_kb")
            cells[(w, a)] = (t, m)
            row.append("—" if t is None else "%.2f / %.2f" % (t, m))
        print("| %s | %s |" % (w, " | ".join(row)))
    print()
    print("Geometric means over the workloads each allocator ran:")
    for a in peers:
        ran = [cells[(w, a)] for w in workloads if cells[(w, a)][0] is not None]
        if not ran:
            continue
        t = math.exp(statistics.mean(math.log(c[0]) for c in ran))
        m = math.exp(statistics.mean(math.log(c[1]) for c in ran))
        print("  %-16s time %.3f  peak RSS %.3f  (%d workloads)" % (a, t, m, len(ran)))


if __name__ == "__main__":
    main()
