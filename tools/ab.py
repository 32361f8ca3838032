#!/usr/bin/env python3
"""A/B runs of bench binaries: interleaved, order rotated, medians.

Usage: python3 tools/ab.py ROUNDS "ARGS" NAME=COMMAND [NAME=COMMAND ...]

  python3 tools/ab.py 11 18 base=/tmp/base/bb/bench/bench_gcbench_goalloc \\
      new=bench/build/bench/bench_gcbench_goalloc
  python3 tools/ab.py 9 "5e7 8" "new=env GOALLOC_GOGC=off bench/build/bench/bench_threads_churn_goalloc" \\
      "glibc=bench/build/bench/bench_threads_churn"

Each round runs every variant once (COMMAND, split like a shell would, then
ARGS), starting with a different variant each round: on the project's
2-core VM the binary that always ran second lost 2-4 % (gcbench: 1.032 one
way, 0.96 the other; docs/design.md, "The final pause, taken apart"). For
each variant it prints the median time (the workload's own time_ms line),
the median of its per-round ratios to the first variant with their range,
and, when the workload reports them, the median longest pause and total
pause (gc_pause_max_ms, gc_pause_total_ms) and the peak RSS (the child's
own: each run goes through bench_launch, bench/launch.c, which must be
built). A failed run (exit status not 0) stops everything.
"""
import os
import shlex
import statistics
import subprocess
import sys
import tempfile


# Linux carries a process's peak RSS over an exec, so a child started
# straight from this Python process (about 15 MiB) reports at least that
# much: every variant of a small workload read 14.4 MiB. bench_launch (a
# few hundred KB, bench/launch.c) runs the child and reports its own peak.
LAUNCHER = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..",
                        "bench", "build", "bench", "bench_launch")


def run(cmd):
    launcher = os.environ.get("AB_LAUNCHER", LAUNCHER)
    if not os.access(launcher, os.X_OK):
        sys.exit("ab: no %s (build it: cmake --build bench/build --target bench_launch, "
                 "or set AB_LAUNCHER)" % launcher)
    with tempfile.NamedTemporaryFile("r", prefix="ab-", suffix=".res") as res:
        proc = subprocess.run([launcher, "-o", res.name, "--"] + cmd,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        out = proc.stdout
        fields = dict(kv.split("=", 1) for kv in res.read().split())
    if proc.returncode != 0 or fields.get("status") != "0":
        sys.exit("ab: %s failed (%s):\n%s" % (" ".join(cmd), fields or proc.returncode,
                                               out[-2000:]))
    got = {"rss_mib": int(fields["maxrss_kb"]) / 1024.0}
    for line in out.splitlines():
        key, _, val = line.partition(":")
        if key in ("time_ms", "gc_pause_max_ms", "gc_pause_total_ms"):
            got[key] = float(val)
    if "time_ms" not in got:
        sys.exit("ab: %s printed no time_ms line" % " ".join(cmd))
    return got


def main(argv):
    if len(argv) < 4:
        sys.exit(__doc__)
    rounds, args = int(argv[1]), shlex.split(argv[2])
    names, cmds = [], []
    for v in argv[3:]:
        name, _, cmd = v.partition("=")
        names.append(name)
        cmds.append(shlex.split(cmd) + args)
    res = {n: [] for n in names}
    for r in range(rounds):
        for k in range(len(names)):
            j = (k + r) % len(names)
            res[names[j]].append(run(cmds[j]))
    med = statistics.median
    base = res[names[0]]
    for n in names:
        rows = res[n]
        ratios = [a["time_ms"] / b["time_ms"] for a, b in zip(rows, base)]
        rss = [a["rss_mib"] / b["rss_mib"] for a, b in zip(rows, base)]
        line = "%-10s time %7.1f ms  ratio %.3f [%.2f-%.2f]  rss %.1f MiB (ratio %.3f)" % (
            n, med(r["time_ms"] for r in rows), med(ratios), min(ratios), max(ratios),
            med(r["rss_mib"] for r in rows), med(rss))
        if all("gc_pause_max_ms" in r for r in rows):
            line += "  longest pause %.2f ms  total pause %.1f ms" % (
                med(r["gc_pause_max_ms"] for r in rows), med(r["gc_pause_total_ms"] for r in rows))
        print(line)


if __name__ == "__main__":
    main(sys.argv)
