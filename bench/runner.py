#!/usr/bin/env python3
"""
runner.py — run every workload against every installed allocator and report.

Called by bench/run.sh (which builds first); see bench/README.md. Python 3
standard library only; matplotlib is used for the chart when it imports.

Method, and why:
  * Interleaved rounds. A round runs the workload once under each allocator;
    the order rotates from round to round (A B C, B C A, C A B, ...), so a
    slow spell of a noisy machine lands on every allocator alike and no
    allocator always follows the same neighbour. Round 0 is a warm-up
    (page cache, CPU frequency) and is discarded.
  * Each run is a fresh process started by bench_launch, which reports the
    wall time of the whole process and its peak RSS from wait4 (a launcher
    is needed because Linux carries a parent's peak RSS over exec, and this
    Python process is bigger than the small workloads).
  * Per allocator: median and min–max over the measured rounds. Ratios to
    goalloc are taken pair by pair — allocator/goalloc within the same round,
    then the median of those — so a disturbance that hits one round moves
    both sides of its ratio.
  * Every workload prints a checksum computed from what it read back out of
    its objects. All allocators must agree with glibc (the GC workloads:
    with Boehm GC, else with Go), every round; a mismatch, a crash, a
    timeout, corrupted objects, or a preload that did not load is reported
    as FAILED and makes the runner exit 1. A broken allocator must not look
    fast. A failure only removes its own cell: the other allocators and
    workloads are still measured and reported.
  * Two kinds of workloads. "malloc" workloads (workloads/*.c) run against
    every malloc implementation; "gc" workloads (gc/*.c, gc/go/) never free
    and run against goalloc's collector, Boehm GC and Go, which report their
    collections and pauses too.
"""

import argparse
import csv
import datetime
import glob
import json
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)

APT_LINE = ("sudo apt-get install libmimalloc-dev libjemalloc-dev "
            "libgoogle-perftools-dev libgc-dev golang-go")


# --------------------------------------------------------------------------
# Workloads. `stem` names the binaries bench_<stem> (plain malloc API) and
# bench_<stem>_goalloc; `quick` / `full` are the arguments for each mode,
# sized so that glibc takes ~0.2-0.5 s (quick) and ~1-3 s (full) on the
# project's 2-core machine; malloc-batch and xthread are sized for the fast
# allocators instead (~0.1-0.2 s quick, ~0.5 s full), since glibc is 5-20x
# slower there. `kind` says which allocators apply: "malloc" workloads run
# against every malloc implementation; the collector issues add "gc"
# workloads (goalloc's collector, Boehm GC, Go).
# --------------------------------------------------------------------------

class Workload:
    """One workload. A C workload is the program bench_<stem> (and
    bench_<stem>_goalloc); a `script` workload is a real program (python3
    running bench/programs/<script>) that only the allocators reached through
    LD_PRELOAD, or glibc, can run: goalloc's statically linked variant does
    not apply (n/a), and its ratios are taken to goalloc-preload instead.
    `env` is added to every run's environment; `metrics` are report lines
    besides the checksum whose values are recorded and shown per allocator
    (never compared)."""

    def __init__(self, name, stem, kind, quick, full, what, script=None,
                 env=(), metrics=()):
        self.name, self.stem, self.kind = name, stem, kind
        self.quick, self.full, self.what = quick, full, what
        self.script, self.env, self.metrics = script, list(env), list(metrics)

    def args(self, mode):
        return list(self.quick if mode == "quick" else self.full)

    def applies(self, a):
        """Can allocator `a` run this workload at all?"""
        return a.kind == self.kind and (not self.script or a.suffix == "")

    def base(self):
        """The allocator the ratios are taken to."""
        return "goalloc-preload" if self.script else "goalloc"

    def command(self, a, bindir, mode, python):
        if self.script:
            # -B: no .pyc written beside the script; -s: no user site-packages.
            return [python, "-B", "-s", os.path.join(HERE, "programs", self.script)] \
                + self.args(mode)
        return [a.binary(bindir, self)] + self.args(mode)


WORKLOADS = [
    Workload("malloc-pairs", "malloc_pairs", "malloc", ["40e6"], ["250e6"],
             "1 thread, malloc+free pairs, 8..512 B"),
    Workload("malloc-batch", "malloc_batch", "malloc", ["20e6"], ["80e6"],
             "1 thread, 1000 mallocs then 1000 frees, 8..512 B"),
    Workload("churn", "churn", "malloc", ["3e6", "65536"], ["20e6", "65536"],
             "1 thread, 64K live objects replaced at random, 8 B..64 KiB skewed"),
    Workload("larson", "larson", "malloc", ["6e6", "2"], ["40e6", "2"],
             "2 threads swap objects through a shared table; threads restart"),
    Workload("xthread", "xthread", "malloc", ["4e6"], ["1.5e7"],
             "producer thread mallocs, consumer thread frees"),
    Workload("threads-churn", "threads_churn", "malloc", ["1e7", "8"], ["5e7", "8"],
             "8 threads (more than there are cores), each replacing its own "
             "4096 objects of 16..256 B at random"),
    # Sized for the allocators that keep the threads' objects apart: on an
    # idle machine glibc, whose objects share lines, is several times slower.
    Workload("false-sharing", "false_sharing", "malloc", ["2e8", "2"], ["1e9", "2"],
             "2 pinned threads allocate 8..64 B objects (half at once, half "
             "reusing slots of objects another thread made and they freed), "
             "then increment them in tight loops", metrics=["shared_objects"]),
    Workload("realloc-grow", "realloc_grow", "malloc", ["2e6"], ["1e7"],
             "256 buffers grown by realloc 1..64 B at a time to 16 B..4 KiB, "
             "some to 64 KiB or 1 MiB"),
    # Sized for glibc; jemalloc is ~10x slower (it hands freed blocks back to
    # the kernel and faults them in again).
    Workload("large-alloc", "large_alloc", "malloc", ["1000", "2"], ["5000", "2"],
             "2 threads allocate, touch (a word per 4 KiB) and free blocks of "
             "1..8 MiB, 4 live each"),
    # A real program, run through LD_PRELOAD only. PYTHONMALLOC=malloc sends
    # every object to malloc (see the script's header); the fixed hash seed
    # is belt and braces (the checksum does not use hash order).
    Workload("python", "python", "malloc", ["1.5"], ["8"],
             "python3 running bench/programs/python_alloc.py: dict churn, "
             "string building, JSON round trips, 4 producer and 2 consumer "
             "threads (PYTHONMALLOC=malloc)", script="python_alloc.py",
             env=["PYTHONMALLOC=malloc", "PYTHONHASHSEED=0",
                  "PYTHONDONTWRITEBYTECODE=1"]),
    # Collector workloads (bench/gc/): no free at all. Sized so that a run
    # takes ~0.2-1 s (quick: gcbench at its classic depth 16) and ~1-9 s
    # (full: binary-trees at depth 19, as in the collector issue's figures)
    # on the project's 2-core machine.
    Workload("binary-trees", "binary_trees", "gc", ["16"], ["19"],
             "long-lived tree of depth D plus 2^(D-d+4) short-lived trees of "
             "each depth d = 4, 6, .. D; 16-byte nodes"),
    Workload("gcbench", "gcbench", "gc", ["16"], ["18"],
             "GCBench-style: long-lived tree of depth D and array of 500000 "
             "doubles, temporary trees of depths 4..D top-down and bottom-up"),
    Workload("gc-churn", "gc_churn", "gc", ["4e5", "30000"], ["1e6", "100000"],
             "W live objects 16 B..4 KiB (1/3 pointer-free) replaced at random, "
             "1 % of steps a 64 KiB..1 MiB pointer-free buffer"),
]

# Measured rounds per mode (after one warm-up round); --rounds overrides.
ROUNDS = {("quick", "malloc"): 3, ("quick", "gc"): 3,
          ("full", "malloc"): 7, ("full", "gc"): 5}
KIND_TITLE = {"malloc": "malloc implementations",
              "gc": "garbage collectors (no free; goalloc's collector vs "
                    "Boehm GC vs Go)"}

# The fast-path micro benchmarks measured in --callgrind mode: N pairs, and
# the same loop without allocator calls ("baseline") and with N = 0.
CALLGRIND_WORKLOADS = ["malloc-pairs", "malloc-batch"]
CALLGRIND_N = 200000


# --------------------------------------------------------------------------
# Allocators.
# --------------------------------------------------------------------------

class Allocator:
    """One way of running a workload: which binary variant, which preload."""

    def __init__(self, name, kind, suffix="", preload=None, version="",
                 package="", extra_env=None):
        self.name, self.kind = name, kind
        self.extra_env = list(extra_env or [])
        self.suffix = suffix          # binary: bench_<stem><suffix>
        self.preload = preload        # LD_PRELOAD path, or None
        self.version = version
        self.package = package

    def binary(self, bindir, workload):
        return os.path.join(bindir, "bench_" + workload.stem + self.suffix)

    def env(self):
        pre = ["LD_PRELOAD=" + self.preload] if self.preload else []
        return pre + self.extra_env


def run_quiet(cmd):
    try:
        return subprocess.run(cmd, stdout=subprocess.PIPE,
                              stderr=subprocess.DEVNULL, text=True,
                              check=False).stdout
    except OSError:
        return ""


_ldcache = None


def find_library(names):
    """The first of `names` (sonames, most preferred first) that the dynamic
    loader knows (ldconfig -p), else that exists in a usual library folder."""
    global _ldcache
    if _ldcache is None:
        _ldcache = {}
        ldconfig = (shutil.which("ldconfig") or
                    next((p for p in ("/sbin/ldconfig", "/usr/sbin/ldconfig")
                          if os.path.exists(p)), None))
        if ldconfig:
            # "libfoo.so.2 (libc6,x86-64) => /lib/x86_64-linux-gnu/libfoo.so.2";
            # on x86-64 skip the 32-bit entries (flags without "x86-64").
            want64 = platform.machine() == "x86_64"
            for line in run_quiet([ldconfig, "-p"]).splitlines():
                m = re.match(r"\s*(\S+) \((.*)\) => (\S+)", line)
                if m and (not want64 or "x86-64" in m.group(2)):
                    _ldcache.setdefault(m.group(1), m.group(3))
    dirs = ["/usr/lib/%s-linux-gnu" % platform.machine(),
            "/lib/%s-linux-gnu" % platform.machine(),
            "/usr/lib64", "/usr/lib", "/usr/local/lib"]
    for n in names:
        if n in _ldcache and os.path.exists(_ldcache[n]):
            return _ldcache[n]
        for d in dirs:
            p = os.path.join(d, n)
            if os.path.exists(p):
                return p
    return None


def package_of(path):
    """(package, version) owning a file, from dpkg; ('', '') if unknown."""
    if not shutil.which("dpkg-query"):
        return "", ""
    real = os.path.realpath(path)
    candidates = [path, real]
    for p in (path, real):   # merged /usr: dpkg may know either spelling
        if p.startswith("/usr/lib/"):
            candidates.append(p[len("/usr"):])
        elif p.startswith("/lib/"):
            candidates.append("/usr" + p)
    for c in candidates:
        out = run_quiet(["dpkg-query", "-S", c]).strip()
        if out:
            pkg = out.split(":")[0].strip()
            ver = run_quiet(["dpkg-query", "-W", "-f=${Version}\\n", pkg]).strip()
            return pkg, ver.splitlines()[0] if ver else ""
    return "", ""


def is_elf(path):
    try:
        with open(path, "rb") as f:
            return f.read(4) == b"\x7fELF"
    except OSError:
        return False


def find_python():
    """The interpreter the script workloads run: BENCH_PYTHON if set, else
    Debian's /usr/bin/python3, else the python3 on PATH. It must be the ELF
    binary itself: a wrapper script (a pyenv shim is bash starting more
    processes) would put the wrapper's start-up into the measurement and
    LD_PRELOAD into every process it starts; so a wrapper is replaced by the
    interpreter it runs (its sys.executable). None when there is none."""
    cands = [os.environ.get("BENCH_PYTHON"), "/usr/bin/python3",
             shutil.which("python3")]
    for c in cands:
        if not c or not os.path.exists(c):
            continue
        if not is_elf(os.path.realpath(c)):
            c = run_quiet([c, "-c", "import sys; print(sys.executable)"]).strip()
        if c and is_elf(os.path.realpath(c)):
            return os.path.realpath(c)
    return None


def glibc_version():
    ver = run_quiet(["dpkg-query", "-W", "-f=${Version}", "libc6"]).strip()
    if ver:
        return "libc6", ver.splitlines()[0]
    try:
        return "", os.confstr("CS_GNU_LIBC_VERSION") or ""
    except (ValueError, OSError):
        return "", ""


# malloc peers used through LD_PRELOAD: name -> sonames (preferred first).
# tcmalloc: the "minimal" build is the allocator alone (no profiler hooks),
# which is what allocator comparisons use.
MALLOC_PEERS = [
    ("mimalloc", ["libmimalloc.so.3", "libmimalloc.so.2", "libmimalloc.so"]),
    ("jemalloc", ["libjemalloc.so.2", "libjemalloc.so"]),
    ("tcmalloc", ["libtcmalloc_minimal.so.4", "libtcmalloc_minimal.so",
                  "libtcmalloc.so.4"]),
]


def exports_malloc(lib):
    """Does the library define malloc and free? A preload that does not is
    ignored by the loader's symbol lookup: the run would measure glibc under
    another name. (Unknown without binutils' nm: assume yes.)"""
    if not shutil.which("nm"):
        return True
    syms = set()
    for line in run_quiet(["nm", "-D", "--defined-only", lib]).splitlines():
        parts = line.split()
        if len(parts) >= 3 and parts[1] in ("T", "W", "i"):
            syms.add(parts[2].split("@")[0])
    return {"malloc", "free"} <= syms


def find_override(build_dir):
    """goalloc's malloc drop-in (libgoalloc-override.so), if the tree builds one."""
    hits = sorted(glob.glob(os.path.join(build_dir, "**", "libgoalloc-override.so*"),
                            recursive=True), key=len)
    return hits[0] if hits else None


def detect_allocators(build_dir, extra_peers):
    allocs, skipped, notes = [], [], []
    # The malloc workloads free everything themselves: goalloc runs them as
    # an explicit-free allocator (collector off), like the drop-in does.
    allocs.append(Allocator("goalloc", "malloc", suffix="_goalloc",
                            version="this tree (libgoalloc.a, linked "
                                    "statically, GOALLOC_GOGC=off)",
                            extra_env=["GOALLOC_GOGC=off"]))
    ov = find_override(build_dir)
    if ov and not exports_malloc(ov):
        notes.append("goalloc-preload: %s does not define malloc and free: "
                     "not measured" % os.path.relpath(ov, ROOT))
    elif ov:
        allocs.append(Allocator("goalloc-preload", "malloc", preload=ov,
                                version="this tree (%s via LD_PRELOAD)"
                                % os.path.relpath(ov, ROOT)))
    else:
        notes.append("goalloc-preload: no libgoalloc-override.so in the build "
                     "tree yet (only the statically linked goalloc is measured)")
    pkg, ver = glibc_version()
    allocs.append(Allocator("glibc", "malloc", version=ver, package=pkg))
    for name, sonames in MALLOC_PEERS:
        lib = find_library(sonames)
        if lib and not exports_malloc(lib):
            notes.append("%s: %s does not define malloc and free: not measured"
                         % (name, lib))
            skipped.append(name)
        elif lib:
            pkg, ver = package_of(lib)
            allocs.append(Allocator(name, "malloc", preload=lib,
                                    version=ver or "not from a package (%s)" % lib,
                                    package=pkg))
        else:
            skipped.append(name)
    for spec in extra_peers:
        name, _, lib = spec.partition("=")
        if not lib or not os.path.exists(lib):
            sys.exit("runner: --peer %s: no such library" % spec)
        if not exports_malloc(lib):
            sys.exit("runner: --peer %s: the library does not define malloc "
                     "and free" % spec)
        pkg, ver = package_of(lib)
        allocs.append(Allocator(name, "malloc", preload=os.path.abspath(lib),
                                version=ver or lib, package=pkg))
    # The collectors, for the "gc" workloads: goalloc's own (collector on,
    # default GOGC), Boehm GC linked dynamically, and Go.
    allocs.append(Allocator("goalloc", "gc", suffix="_goalloc",
                            version="this tree (libgoalloc.a, collector on, "
                                    "GOGC=%s)" % os.environ.get("GOALLOC_GOGC", "100")))
    lib = find_library(["libgc.so.1", "libgc.so"])
    if lib:
        pkg, ver = package_of(lib)
        allocs.append(Allocator("boehm-gc", "gc", suffix="_boehm",
                                version=(ver or "not from a package (%s)" % lib)
                                + ", default settings, parallel marking",
                                package=pkg))
    else:
        skipped.append("boehm-gc")
    go = shutil.which("go")
    if go:
        m = re.search(r"go version (\S+)", run_quiet([go, "version"]))
        pkg, ver = package_of(go)
        allocs.append(Allocator("go", "gc", suffix="_go",
                                version="%s%s, default GOGC" % (
                                    m.group(1) if m else "?",
                                    " (%s %s)" % (pkg, ver) if pkg else "")))
    else:
        skipped.append("go")
    return allocs, skipped, notes


# --------------------------------------------------------------------------
# Running one workload once.
# --------------------------------------------------------------------------

class RunResult:
    def __init__(self):
        self.ok = False
        self.error = ""
        self.wall_s = self.maxrss_kb = self.self_ms = None
        self.user_s = self.sys_s = None
        self.checksum = None
        self.stdout = self.stderr = ""
        self.timed_out = False
        self.backtrace = ""    # gdb's "thread apply all bt" of a run that hung
        # Collector workloads: collections and stop-the-world pauses.
        self.gc_n = self.gc_pause_total_ms = self.gc_pause_max_ms = None
        self.gc_pauses_seen = None
        self.metrics = {}      # the workload's `metrics` lines, by name


def parse_report(text):
    out = {}
    for line in text.splitlines():
        k, sep, v = line.partition(":")
        if sep:
            out[k.strip()] = v.strip()
    return out


def num(rep, key, conv=float):
    try:
        return conv(rep[key])
    except (KeyError, ValueError):
        return None


def run_once(launcher, cmd, env, timeout, metrics=()):
    r = RunResult()
    fd, resfile = tempfile.mkstemp(prefix="bench-", suffix=".res")
    os.close(fd)
    btfile = resfile[:-4] + ".bt"
    full = [launcher, "-o", resfile, "-t", str(timeout)]
    if shutil.which("gdb"):
        full += ["-g", btfile]   # a hang leaves every thread's backtrace
    for e in env:
        full += ["-e", e]
    full += ["--"] + cmd
    try:
        p = subprocess.run(full, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           text=True, timeout=timeout + 30, check=False)
        r.stdout, r.stderr = p.stdout, p.stderr
        with open(resfile) as f:
            res = dict(kv.split("=", 1) for kv in f.read().split())
    except (subprocess.TimeoutExpired, OSError, ValueError) as e:
        r.error = "launcher failed: %s" % e
        return r
    finally:
        os.unlink(resfile)
        if os.path.exists(btfile):
            with open(btfile, errors="replace") as f:
                r.backtrace = f.read()
            os.unlink(btfile)
    r.wall_s = int(res["wall_ns"]) / 1e9
    r.maxrss_kb = int(res["maxrss_kb"])
    r.user_s = int(res["user_us"]) / 1e6
    r.sys_s = int(res["sys_us"]) / 1e6
    status, sig = int(res["status"]), int(res["signal"])
    r.timed_out = res.get("timed_out", "0") == "1"
    rep = parse_report(r.stdout)
    if r.timed_out:
        r.error = "hung: killed after the %d s timeout" % timeout
    elif sig:
        r.error = "killed by signal %d (%s)" % (sig, signal_name(sig))
    elif status != 0:
        r.error = "exit status %d" % status
    elif "cannot be preloaded" in r.stderr:
        r.error = "the preload did not load (ran with glibc instead)"
    elif "checksum" not in rep:
        r.error = "no checksum line in the output"
    elif rep.get("errors", "0") != "0":
        r.error = "%s objects did not verify" % rep.get("errors")
    else:
        r.ok = True
    if r.error:
        tail = (r.stderr.strip().splitlines() or [""])[-3:]
        if any(tail):
            r.error += ": " + " | ".join(t.strip() for t in tail)
    r.checksum = rep.get("checksum")
    r.self_ms = num(rep, "time_ms")
    r.gc_n = num(rep, "gc_collections", int)
    r.gc_pause_total_ms = num(rep, "gc_pause_total_ms")
    r.gc_pause_max_ms = num(rep, "gc_pause_max_ms")
    r.gc_pauses_seen = num(rep, "gc_pauses_seen", int)
    r.metrics = {m: num(rep, m) for m in metrics}
    return r


def signal_name(sig):
    try:
        import signal
        return signal.Signals(sig).name
    except (ValueError, ImportError):
        return "?"


# --------------------------------------------------------------------------
# Statistics.
# --------------------------------------------------------------------------

def med(xs):
    return statistics.median(xs) if xs else None


def ratios(runs, base, get):
    """Pair-by-pair ratios allocator / goalloc, one per round both ran in."""
    out = []
    for rnd, r in runs:
        b = base.get(rnd)
        if b is not None and get(r) is not None and get(b):
            out.append(get(r) / get(b))
    return out


def summarise(workloads, allocs, samples):
    """samples[(w, a)] = list of (round, RunResult), measured rounds only."""
    summary = []
    for w in workloads:
        base = {rnd: r for rnd, r in samples.get((w.name, w.base()), []) if r.ok}
        for a in allocs:
            if not w.applies(a):
                continue
            runs = [(rnd, r) for rnd, r in samples.get((w.name, a.name), []) if r.ok]
            if not runs:
                continue
            t = [r.wall_s for _, r in runs]
            m = [r.maxrss_kb for _, r in runs]
            tr = ratios(runs, base, lambda r: r.wall_s)
            mr = ratios(runs, base, lambda r: r.maxrss_kb)
            row = {
                "workload": w.name, "kind": w.kind, "allocator": a.name,
                "rounds": len(runs),
                "time_s_median": med(t), "time_s_min": min(t), "time_s_max": max(t),
                "rss_kb_median": med(m), "rss_kb_min": min(m), "rss_kb_max": max(m),
                "time_ratio": med(tr), "time_ratio_min": min(tr) if tr else None,
                "time_ratio_max": max(tr) if tr else None,
                "rss_ratio": med(mr), "rss_ratio_min": min(mr) if mr else None,
                "rss_ratio_max": max(mr) if mr else None,
                "self_ms_median": med([r.self_ms for _, r in runs if r.self_ms is not None]),
            }
            for m in w.metrics:
                v = [r.metrics[m] for _, r in runs if r.metrics.get(m) is not None]
                row.update({"metric_" + m + "_median": med(v),
                            "metric_" + m + "_min": min(v) if v else None,
                            "metric_" + m + "_max": max(v) if v else None})
            if w.kind == "gc":
                n = [r.gc_n for _, r in runs if r.gc_n is not None]
                pt = [r.gc_pause_total_ms for _, r in runs
                      if r.gc_pause_total_ms is not None]
                px = [r.gc_pause_max_ms for _, r in runs
                      if r.gc_pause_max_ms is not None]
                pr = ratios(runs, base, lambda r: r.gc_pause_max_ms)
                # goalloc and Go keep the last 256 pauses: the max is over those.
                # (Boehm's count includes the collection GC_INIT does before
                # the pause callback is installed: that one is not "missing".)
                partial = any(r.gc_n is not None and r.gc_pauses_seen is not None
                              and r.gc_n > 256 and r.gc_pauses_seen <= 256
                              for _, r in runs)
                row.update({
                    "gc_collections_median": med(n),
                    "gc_collections_min": min(n) if n else None,
                    "gc_collections_max": max(n) if n else None,
                    "gc_pause_total_ms_median": med(pt),
                    "gc_pause_max_ms_median": med(px),
                    "gc_pause_max_ms_min": min(px) if px else None,
                    "gc_pause_max_ms_max": max(px) if px else None,
                    "gc_pause_max_ratio": med(pr),
                    "gc_pause_max_ratio_min": min(pr) if pr else None,
                    "gc_pause_max_ratio_max": max(pr) if pr else None,
                    "gc_pause_max_last256": partial,
                })
            summary.append(row)
    return summary


# --------------------------------------------------------------------------
# Reporting.
# --------------------------------------------------------------------------

def machine_info():
    cpu = ""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    mem = ""
    try:
        with open("/proc/meminfo") as f:
            kb = int(f.readline().split()[1])
            mem = "%.1f GiB" % (kb / 1048576)
    except (OSError, ValueError, IndexError):
        pass
    commit = run_quiet(["git", "-C", ROOT, "rev-parse", "--short", "HEAD"]).strip()
    if commit and run_quiet(["git", "-C", ROOT, "status", "--porcelain",
                             "--untracked-files=no"]).strip():
        commit += " (with uncommitted changes)"
    return {
        "cpu": cpu or platform.processor() or platform.machine(),
        "cores": os.cpu_count(),
        "memory": mem,
        "kernel": platform.release(),
        "os": platform.platform(terse=True),
        "compiler": (run_quiet(["cc", "--version"]).splitlines() or [""])[0],
        "date": datetime.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z"),
        "commit": commit or "none (no commit yet)",
    }


class OtherLoad:
    """How much CPU did other processes use while we measured?

    /proc/stat gives the CPU time the whole machine spent busy; our own share
    is this process plus every descendant it reaped (os.times: the launcher
    and the workloads). The rest, divided by the elapsed time, is the number
    of cores something else kept busy — the noise the medians had to absorb.
    Unlike the load average it is not inflated by the build that just ran or
    by the benchmark itself."""

    def __init__(self):
        self.start = self._sample()

    @staticmethod
    def _sample():
        try:
            with open("/proc/stat") as f:
                v = [int(x) for x in f.readline().split()[1:]]
            busy = (sum(v) - v[3] - (v[4] if len(v) > 4 else 0)) / os.sysconf("SC_CLK_TCK")
        except (OSError, ValueError, IndexError):
            return None
        t = os.times()
        return busy, t.user + t.system + t.children_user + t.children_system, t.elapsed

    def cores(self):
        end = self._sample()
        if not self.start or not end or end[2] <= self.start[2]:
            return None
        other = (end[0] - self.start[0]) - (end[1] - self.start[1])
        return max(0.0, other / (end[2] - self.start[2]))


def fmt_other_load(meta):
    x = meta.get("other_load_cores")
    if x is None:
        return "unknown"
    return "%.2f cores on average%s" % (
        x, " — the machine was busy: trust only large differences" if x > 0.25 else "")


def fmt_time(s):
    return "%.3f" % s if s < 10 else "%.1f" % s


def fmt_mb(kb):
    return "%.1f" % (kb / 1024)


def fmt_ratio(x):
    return "—" if x is None else "%.2f" % x


def fmt_ms(x):
    if x is None:
        return "—"
    return "%.3f" % x if x < 1 else "%.1f" % x if x < 100 else "%.0f" % x


def failed(failures, wname, aname):
    return any(f[0] == wname and f[1] == aname for f in failures)


def ratio_cell(s, keys, failures, wname, aname):
    """One cell of a ratio table: the ratios, FAILED, or — (not run). When
    goalloc itself failed there is no ratio: the peer's own median time and
    RSS are shown in parentheses, so the row still says something."""
    if s is None:
        return "FAILED" if failed(failures, wname, aname) else "—"
    if s["time_ratio"] is None:
        return "(%s s, %s MiB)" % (fmt_time(s["time_s_median"]),
                                   fmt_mb(s["rss_kb_median"]))
    return " / ".join(fmt_ratio(s.get(k)) for k in keys)


def markdown(meta, allocs, skipped, notes, workloads, summary, failures, mode,
             rounds, skipped_w=None):
    skipped_w = skipped_w or {}
    kinds = [k for k in ("malloc", "gc") if any(w.kind == k for w in workloads)]
    L = []
    L.append("# goalloc benchmark — %s mode" % mode)
    L.append("")
    L.append("- date: %s; commit: %s" % (meta["date"], meta["commit"]))
    L.append("- machine: %s, %s cores, %s; kernel %s; %s"
             % (meta["cpu"], meta["cores"], meta["memory"], meta["kernel"],
                meta["compiler"]))
    L.append("- CPU used by other processes while measuring: %s" % fmt_other_load(meta))
    if meta.get("python"):
        L.append("- python3 for the real-program workload: %s" % meta["python"])
    L.append("- method: %s measured rounds after 1 warm-up round, allocators "
             "interleaved (order rotated each round); each run a fresh process; "
             "wall time of the process, peak RSS from wait4; ratio = allocator ÷ "
             "goalloc within a round, median over rounds (> 1: goalloc is faster "
             "/ smaller)" % ", ".join("%d (%s workloads)" % (rounds[k], k)
                                      for k in kinds))
    L.append("")
    L.append("| allocator | workloads | version |")
    L.append("|---|---|---|")
    for a in allocs:
        if a.kind in kinds:
            L.append("| %s | %s | %s%s |" % (a.name, a.kind,
                                             (a.package + " ") if a.package else "",
                                             a.version or "?"))
    L.append("")
    if skipped:
        L.append("Skipped (not installed): %s. Install them with `%s`."
                 % (", ".join(skipped), APT_LINE))
        L.append("")
    for n in notes:
        L.append("Note: " + n + ".")
    if notes:
        L.append("")

    by = {(s["workload"], s["allocator"]): s for s in summary}
    for kind in kinds:
        wl = [w for w in workloads if w.kind == kind]
        kallocs = [a for a in allocs if a.kind == kind]
        names = [a.name for a in kallocs]
        gc = kind == "gc"
        L.append("## Relative to goalloc (allocator ÷ goalloc): %s" % KIND_TITLE[kind])
        L.append("")
        L.append("| workload | " + " | ".join(names) + " |")
        L.append("|---" * (len(names) + 1) + "|")
        keys = (["time_ratio", "rss_ratio", "gc_pause_max_ratio"] if gc
                else ["time_ratio", "rss_ratio"])
        for w in wl:
            L.append("| %s%s | %s |" % (w.name, " (÷ %s)" % w.base()
                                         if w.base() != "goalloc" else "",
                                         " | ".join(
                "skipped" if w.name in skipped_w else
                "n/a" if not w.applies(a) else
                ratio_cell(by.get((w.name, a.name)), keys, failures, w.name, a.name)
                for a in kallocs)))
        L.append("")
        L.append("Each cell: time ratio / peak-RSS ratio%s. FAILED: see FAILURES "
                 "below; — not run; n/a: cannot run it (goalloc's statically "
                 "linked variant and a program it was not linked into); "
                 "skipped: see below." % (" / max-pause ratio" if gc else ""))
        for w in wl:
            if w.base() != "goalloc" and w.name not in skipped_w:
                L.append("A row marked (÷ %s) takes its ratios to %s instead "
                         "(%s is a real program, run through LD_PRELOAD only)."
                         % (w.base(), w.base(), w.name))
            if w.name in skipped_w:
                L.append("%s: skipped, %s." % (w.name, skipped_w[w.name]))
        L.append("")
        L.append("### Medians and ranges (%s)" % kind)
        L.append("")
        if gc:
            L.append("| workload | implementation | time s, median [min–max] | "
                     "÷ goalloc [min–max] | peak RSS MiB, median [min–max] | "
                     "÷ goalloc | collections | total pause ms | max pause ms, "
                     "median [min–max] | ÷ goalloc |")
            L.append("|---|---|---|---|---|---|---|---|---|---|")
        else:
            L.append("| workload | allocator | time s, median [min–max] | "
                     "÷ goalloc [min–max] | peak RSS MiB, median [min–max] | "
                     "÷ goalloc |")
            L.append("|---|---|---|---|---|---|")
        last256 = False
        for w in wl:
            if w.name in skipped_w:
                L.append("| %s | — | skipped |%s" % (w.name, " |" * (7 if gc else 3)))
                continue
            for a in kallocs:
                n = a.name
                s = by.get((w.name, n))
                if not w.applies(a):
                    L.append("| %s | %s | n/a |%s" % (w.name, n, " |" * (7 if gc else 3)))
                    continue
                if s is None:
                    if failed(failures, w.name, n):
                        L.append("| %s | %s | FAILED |%s" % (
                            w.name, n, " |" * (7 if gc else 3)))
                    continue
                row = "| %s | %s | %s [%s–%s] | %s [%s–%s] | %s [%s–%s] | %s |" % (
                    w.name, n, fmt_time(s["time_s_median"]), fmt_time(s["time_s_min"]),
                    fmt_time(s["time_s_max"]), fmt_ratio(s["time_ratio"]),
                    fmt_ratio(s["time_ratio_min"]), fmt_ratio(s["time_ratio_max"]),
                    fmt_mb(s["rss_kb_median"]), fmt_mb(s["rss_kb_min"]),
                    fmt_mb(s["rss_kb_max"]), fmt_ratio(s["rss_ratio"]))
                if gc:
                    c = s.get("gc_collections_median")
                    star = "*" if s.get("gc_pause_max_last256") else ""
                    last256 = last256 or bool(star)
                    row += " %s | %s | %s%s [%s–%s] | %s |" % (
                        "—" if c is None else "%g" % c,
                        fmt_ms(s.get("gc_pause_total_ms_median")),
                        fmt_ms(s.get("gc_pause_max_ms_median")), star,
                        fmt_ms(s.get("gc_pause_max_ms_min")),
                        fmt_ms(s.get("gc_pause_max_ms_max")),
                        fmt_ratio(s.get("gc_pause_max_ratio")))
                L.append(row)
        L.append("")
        if gc:
            L.append("Pauses are stop-the-world times as each collector reports "
                     "them: goalloc `ga_read_stats` (pause_total_ns, pause_ns), "
                     "Boehm GC from GC_EVENT_PRE_STOP_WORLD to "
                     "GC_EVENT_POST_START_WORLD (collections: GC_get_gc_no), Go "
                     "`runtime.ReadMemStats` (NumGC, PauseTotalNs, PauseNs)."
                     + (" \\* max over the last 256 collections only (the size "
                        "of goalloc's and Go's pause rings)." if last256 else ""))
            L.append("")
        for w in wl:
            for m in w.metrics:
                if not any((w.name, n) in by for n in names):
                    continue
                L.append("### %s: %s (median [min–max] per run; not part of the "
                         "checksum)" % (w.name, m))
                L.append("")
                L.append("| " + " | ".join(names) + " |")
                L.append("|---" * len(names) + "|")
                cells = []
                for n in names:
                    s = by.get((w.name, n))
                    if s is None or s.get("metric_%s_median" % m) is None:
                        cells.append("—")
                    else:
                        cells.append("%g [%g–%g]" % (s["metric_%s_median" % m],
                                                     s["metric_%s_min" % m],
                                                     s["metric_%s_max" % m]))
                L.append("| " + " | ".join(cells) + " |")
                L.append("")
                if m in METRIC_NOTES:
                    L.append(METRIC_NOTES[m])
                    L.append("")
    L.append("Workloads: " + "; ".join("**%s** %s (args: %s)"
                                      % (w.name, w.what, " ".join(w.args(mode)))
                                      for w in workloads) + ".")
    L.append("")
    if failures:
        L.append("## FAILURES")
        L.append("")
        for wn, an, msg in failures:
            L.append("- **%s / %s**: %s" % (wn, an, msg))
        L.append("")
    return "\n".join(L)


# What a workload's metric means, printed under its table.
METRIC_NOTES = {
    "shared_objects": "shared_objects: how many of false-sharing's small "
                      "objects (64 per thread) share a 64-byte cache line with "
                      "an object of another thread while the threads write "
                      "them (0 is right; the workload's stderr splits them into "
                      "objects allocated concurrently and slots reused after a "
                      "free).",
}


def write_csv(path, summary):
    keys = ["workload", "kind", "allocator", "rounds", "time_s_median", "time_s_min",
            "time_s_max", "time_ratio", "time_ratio_min", "time_ratio_max",
            "rss_kb_median", "rss_kb_min", "rss_kb_max", "rss_ratio",
            "rss_ratio_min", "rss_ratio_max", "self_ms_median",
            "gc_collections_median", "gc_collections_min", "gc_collections_max",
            "gc_pause_total_ms_median", "gc_pause_max_ms_median",
            "gc_pause_max_ms_min", "gc_pause_max_ms_max", "gc_pause_max_ratio",
            "gc_pause_max_ratio_min", "gc_pause_max_ratio_max"]
    keys += sorted({k for s in summary for k in s if k.startswith("metric_")})
    with open(path, "w", newline="") as f:
        wr = csv.DictWriter(f, fieldnames=keys)
        wr.writeheader()
        for s in summary:
            wr.writerow({k: s.get(k) for k in keys})


def draw_panel(matplotlib, ax, wnames, peers, by, key, title):
    """Bars of one ratio (peer ÷ goalloc) per workload, one bar per peer, on
    a log scale, growing from goalloc's line at 1: up, goalloc is better;
    down, the peer is. The whisker is the min–max of the per-round ratios."""
    width = 0.8 / max(1, len(peers))
    vals = [1.0]
    for i, p in enumerate(peers):
        xs, ys, lo, hi = [], [], [], []
        for j, w in enumerate(wnames):
            s = by.get((w, p))
            if s and s.get(key):
                xs.append(j - 0.4 + width * (i + 0.5))
                ys.append(s[key])
                lo.append(s[key] - (s[key + "_min"] or s[key]))
                hi.append((s[key + "_max"] or s[key]) - s[key])
                vals += [s[key + "_min"] or s[key], s[key + "_max"] or s[key]]
        ax.bar(xs, [y - 1 for y in ys], width, bottom=1, label=p)
        if xs:
            ax.errorbar(xs, ys, yerr=[lo, hi], fmt="none", ecolor="black",
                        elinewidth=0.8, capsize=2)
    ax.axhline(1.0, color="black", linewidth=1)
    ax.set_yscale("log")
    ax.set_title(title + " (log)", fontsize=9)
    ax.grid(axis="y", which="major", alpha=0.3)
    ticks = [t for t in (0.01, 0.02, 0.05, 0.1, 0.2, 0.3, 0.5, 0.7, 1, 1.5, 2,
                         3, 5, 7, 10, 20, 50, 100, 200, 500)
             if min(vals) / 1.5 <= t <= max(vals) * 1.5]
    ax.yaxis.set_major_locator(matplotlib.ticker.FixedLocator(ticks))
    ax.yaxis.set_major_formatter(matplotlib.ticker.FormatStrFormatter("%g"))
    ax.yaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
    ax.set_xticks(range(len(wnames)))
    ax.set_xticklabels(wnames, fontsize=8)
    ax.set_xlim(-0.6, len(wnames) - 0.4)
    ax.set_ylim(min(vals) / 1.3, max(vals) * 1.3)


def draw_chart(path, workloads, allocs, summary, meta, mode):
    """One PNG: a column of panels per kind of workload (malloc: time, RSS;
    gc: time, RSS, max pause), each with its own peers."""
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        import matplotlib.ticker  # noqa: F401  (matplotlib.ticker below)
    except ImportError:
        print("runner: matplotlib is not importable: no chart (on Debian: "
              "sudo apt-get install python3-matplotlib)", file=sys.stderr)
        return False
    by = {(s["workload"], s["allocator"]): s for s in summary}
    cols = []
    for kind in ("malloc", "gc"):
        wnames = [w.name for w in workloads if w.kind == kind]
        if not wnames:
            continue
        peers = [a.name for a in allocs if a.kind == kind and a.name != "goalloc"]
        panels = [("time_ratio", "wall time ÷ goalloc"),
                  ("rss_ratio", "peak RSS ÷ goalloc")]
        if kind == "gc":
            panels.append(("gc_pause_max_ratio", "max pause ÷ goalloc"))
        cols.append((kind, wnames, peers, panels))
    if not cols:
        return False
    nrows = max(len(c[3]) for c in cols)
    widths = [max(2, len(c[1])) for c in cols]
    fig = plt.figure(figsize=(max(7, 1.5 * sum(widths) + 2.5), 3.2 * nrows + 1.2))
    gs = fig.add_gridspec(nrows, len(cols), width_ratios=widths)
    for ci, (kind, wnames, peers, panels) in enumerate(cols):
        for ri, (key, title) in enumerate(panels):
            ax = fig.add_subplot(gs[ri, ci])
            draw_panel(matplotlib, ax, wnames, peers, by, key,
                       "%s — %s" % (kind, title))
        handles, labels = ax.get_legend_handles_labels()
        ax.legend(handles, labels, fontsize="x-small", loc="best",
                  title="peers (%s)" % kind, title_fontsize="x-small")
    fig.suptitle("goalloc vs peers (%s mode, %s, commit %s)\n"
                 "above 1: the peer is slower / uses more memory / pauses longer "
                 "than goalloc" % (mode, meta["date"], meta["commit"].split()[0]),
                 fontsize=10)
    fig.tight_layout(rect=(0, 0, 1, 0.96))
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


# --------------------------------------------------------------------------
# The two modes of operation.
# --------------------------------------------------------------------------

def log(msg):
    print(msg, file=sys.stderr, flush=True)


# The implementation whose checksum every other one must match, per kind of
# workload (the first of these that ran); it also goes first in the warm-up
# round, so its time sets the timeout of the others.
REFERENCE = {"malloc": ["glibc"], "gc": ["boehm-gc", "go"]}


def select_workloads(only):
    """--only: workload names, or a kind ("malloc", "gc") for all of it."""
    if not only:
        return list(WORKLOADS)
    want = set(only.split(","))
    unknown = want - {w.name for w in WORKLOADS} - {w.kind for w in WORKLOADS}
    if unknown:
        sys.exit("runner: unknown workload(s): %s (see --list)" % ", ".join(sorted(unknown)))
    return [w for w in WORKLOADS if w.name in want or w.kind in want]


def bench(args, allocs, skipped, notes, bindir, missing):
    mode = "quick" if args.quick else "full"
    rounds = {k: args.rounds or ROUNDS[(mode, k)] for k in ("malloc", "gc")}
    # A run that hangs (a deadlocked allocator or collector) is killed. With
    # no --timeout, the limit is `base` until the reference (glibc; Boehm GC
    # or Go for the GC workloads) has run once in the workload's warm-up
    # round (it goes first there), then 20x its time, at least 10 s: an
    # allocator 20x slower has failed anyway, and a hang then costs seconds,
    # not minutes. A run that hangs is shown to gdb first when gdb is
    # installed; the backtrace of every thread is kept beside the results.
    base = args.timeout or (20 if args.quick else 120)
    launcher = os.path.join(bindir, "bench_launch")
    workloads = select_workloads(args.only)
    if not workloads:
        sys.exit("runner: no workload selected")
    prefix = args.out or os.path.join(HERE, "results",
                                      "latest" if mode == "full" else "quick")
    os.makedirs(os.path.dirname(prefix), exist_ok=True)
    for old in glob.glob(prefix + "-hang-*.txt"):
        os.unlink(old)
    samples, failures = {}, []
    meta = machine_info()
    other_load = OtherLoad()
    # Real programs (script workloads) need their interpreter; without it
    # they are skipped, which is not a failure (as the tests skip with 77).
    python = find_python() if any(w.script for w in workloads) else None
    skipped_w = {}
    for w in workloads:
        if w.script and not python:
            skipped_w[w.name] = ("python3 is not installed (sudo apt-get install "
                                 "python3)")
            log("skipped %s: %s" % (w.name, skipped_w[w.name]))
    if python:
        meta["python"] = "%s (%s)" % (
            python, run_quiet([python, "-c", "import platform; "
                               "print(platform.python_version())"]).strip() or "?")

    def fail(w, a, msg):
        failures.append((w.name, a.name, msg))
        log("FAILED %s / %s: %s" % (w.name, a.name, msg))
        samples.pop((w.name, a.name), None)

    for w in workloads:
        if w.name in skipped_w:
            continue
        nrounds = rounds[w.kind]
        refs = REFERENCE[w.kind]
        active = []
        for a in allocs:
            if not w.applies(a):
                continue
            if (w.name, a.name) in missing:
                fail(w, a, missing[(w.name, a.name)])
            else:
                active.append(a)
        active.sort(key=lambda a: refs.index(a.name) if a.name in refs else len(refs))
        ref = {}  # allocator -> checksum (must all equal the reference's)
        timeout = base
        for rnd in range(nrounds + 1):
            k = rnd % len(active) if active else 0
            order = active[k:] + active[:k]
            line = []
            for a in order:
                cmd = w.command(a, bindir, mode, python)
                r = run_once(launcher, cmd, a.env() + w.env, timeout, w.metrics)
                if (r.ok and rnd == 0 and not args.timeout and
                        a.name == next((x.name for x in active if x.name in refs), None)):
                    timeout = int(min(base, max(10, 20 * r.wall_s)) + 0.999)
                if r.ok:
                    ref.setdefault(a.name, r.checksum)
                    if r.checksum != ref[a.name]:
                        r.ok = False
                        r.error = ("checksum %s differs from its own earlier %s"
                                   % (r.checksum, ref[a.name]))
                if not r.ok:
                    msg = "%s (round %d, args: %s)" % (r.error, rnd,
                                                       " ".join(w.args(mode)))
                    if r.backtrace:
                        bt = "%s-hang-%s-%s.txt" % (prefix, w.name, a.name)
                        with open(bt, "w") as f:
                            f.write("# %s\n# gdb -p PID -batch -ex 'thread apply "
                                    "all bt', after %d s\n\n%s"
                                    % (" ".join(cmd), timeout, r.backtrace))
                        msg += "; backtrace of every thread: %s" % os.path.relpath(bt, ROOT)
                        log(r.backtrace.strip()[-4000:])
                    fail(w, a, msg)
                    active.remove(a)  # do not spend the rest of the rounds on it
                    continue
                if rnd > 0:
                    samples.setdefault((w.name, a.name), []).append((rnd, r))
                extra = ""
                if r.gc_n is not None:
                    extra = " %dgc max%.1fms" % (r.gc_n, r.gc_pause_max_ms or 0)
                for m, v in sorted(r.metrics.items()):
                    extra += " %s=%s" % (m, "?" if v is None else "%g" % v)
                line.append("%s %.3fs %.1fMiB%s" % (a.name, r.wall_s,
                                                    r.maxrss_kb / 1024, extra))
            log("%-13s %s  %s" % (w.name, "warm-up " if rnd == 0 else
                                  "round %d/%d" % (rnd, nrounds), ", ".join(line)))
        # Every implementation must agree with the reference.
        refname = next((x for x in refs if x in ref), None)
        want = ref.get(refname)
        for an, cs in sorted(ref.items()):
            if want is not None and cs != want and (w.name, an) in samples:
                fail(w, next(a for a in allocs if a.name == an and a.kind == w.kind),
                     "checksum %s, %s's is %s: wrong results" % (cs, refname, want))

    summary = summarise(workloads, allocs, samples)
    meta["other_load_cores"] = other_load.cores()
    md = markdown(meta, allocs, skipped, notes, workloads, summary, failures,
                  mode, rounds, skipped_w)
    png = prefix + ".png"
    drawn = draw_chart(png, workloads, allocs, summary, meta, mode)
    if drawn:
        md += "\n![time, RSS and pause ratios](%s)\n" % os.path.basename(png)
    print(md)
    with open(prefix + ".md", "w") as f:
        f.write(md)
    write_csv(prefix + ".csv", summary)
    with open(prefix + ".json", "w") as f:
        json.dump({
            "mode": mode, "rounds": rounds, "machine": meta,
            "allocators": [vars(a) for a in allocs], "skipped": skipped,
            "workloads": [{"name": w.name, "kind": w.kind, "args": w.args(mode),
                           "what": w.what, "program": w.script, "env": w.env,
                           "ratios_to": w.base(),
                           "not_applicable": [a.name for a in allocs
                                              if a.kind == w.kind and not w.applies(a)],
                           "skipped": skipped_w.get(w.name)}
                          for w in workloads],
            "summary": summary,
            "samples": [{"workload": wn, "allocator": an, "round": rnd,
                         "wall_s": r.wall_s, "maxrss_kb": r.maxrss_kb,
                         "user_s": r.user_s, "sys_s": r.sys_s,
                         "self_ms": r.self_ms, "checksum": r.checksum,
                         "gc_collections": r.gc_n,
                         "gc_pause_total_ms": r.gc_pause_total_ms,
                         "gc_pause_max_ms": r.gc_pause_max_ms,
                         "gc_pauses_seen": r.gc_pauses_seen,
                         "metrics": r.metrics}
                        for (wn, an), runs in sorted(samples.items())
                        for rnd, r in runs],
            "failures": [{"workload": a, "allocator": b, "error": c}
                         for a, b, c in failures],
        }, f, indent=1)
    log("runner: wrote %s.{md,csv,json%s}" % (os.path.relpath(prefix),
                                             ",png" if drawn else ""))
    if failures:
        log("runner: %d FAILURE(S) — see the FAILURES section above" % len(failures))
        return 1
    return 0


def callgrind_ir(cmd, env, timeout):
    """Total instructions executed by cmd under callgrind, and its report."""
    fd, out = tempfile.mkstemp(prefix="bench-", suffix=".cg")
    os.close(fd)
    e = dict(os.environ)
    for kv in env:
        k, _, v = kv.partition("=")
        e[k] = v
    try:
        p = subprocess.run(["valgrind", "--tool=callgrind",
                            "--callgrind-out-file=" + out] + cmd,
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                           env=e, timeout=timeout, check=False)
    except subprocess.TimeoutExpired:
        return None, {}, "timeout"
    finally:
        os.unlink(out)
    m = re.search(r"Collected\s*:\s*(\d+)", p.stderr)
    if p.returncode != 0 or not m:
        return None, {}, "exit %d: %s" % (p.returncode, p.stderr.strip()[-300:])
    if "cannot be preloaded" in p.stderr:
        return None, {}, "the preload did not load"
    return int(m.group(1)), parse_report(p.stdout), ""


def callgrind(args, allocs, skipped, notes, bindir):
    if not shutil.which("valgrind"):
        sys.exit("runner: --callgrind needs valgrind: sudo apt-get install valgrind")
    n = args.callgrind_n or CALLGRIND_N
    meta = machine_info()
    rows, failures = [], []
    by_name = {w.name: w for w in WORKLOADS}
    for wn in CALLGRIND_WORKLOADS:
        w = by_name[wn]
        ref = None
        # glibc first: its checksum is the reference the others must match.
        order = sorted([a for a in allocs if a.kind == "malloc"],
                       key=lambda a: a.name != "glibc")
        for a in order:
            exe = a.binary(bindir, w)
            full, rep, err = callgrind_ir([exe, str(n)], a.env(), 600)
            zero, _, err0 = callgrind_ir([exe, "0"], a.env(), 600)
            base, _, errb = callgrind_ir([exe, str(n), "baseline"], a.env(), 600)
            err = err or err0 or errb
            if not err and rep.get("errors", "0") != "0":
                err = "objects did not verify"
            if not err:
                ref = ref or rep.get("checksum")
                if rep.get("checksum") != ref:
                    err = "checksum %s, glibc's is %s: wrong results" % (
                        rep.get("checksum"), ref)
            if err:
                failures.append((wn, a.name, err))
                log("FAILED callgrind %s / %s: %s" % (wn, a.name, err))
                continue
            ops = int(rep.get("ops", n))
            row = {"workload": wn, "allocator": a.name, "pairs": ops,
                   "ir_total": full, "ir_n0": zero, "ir_baseline": base,
                   "per_pair": (full - base) / ops,
                   "per_pair_with_loop": (full - zero) / ops,
                   "loop_per_pair": (base - zero) / ops}
            rows.append(row)
            log("callgrind %-13s %-16s %7.1f instr/pair (%.1f with the loop)"
                % (wn, a.name, row["per_pair"], row["per_pair_with_loop"]))
    L = ["# goalloc — instructions per malloc+free pair (callgrind)", "",
         "- date: %s; commit: %s" % (meta["date"], meta["commit"]),
         "- machine: %s; kernel %s; %s" % (meta["cpu"], meta["kernel"],
                                           meta["compiler"]),
         "- method: `valgrind --tool=callgrind` on each workload with N = %d "
         "pairs, with N = 0, and with N pairs of the same loop minus the two "
         "allocator calls (`baseline`). **per pair** = (Ir(N) − Ir(baseline)) / N "
         "is the allocator's own cost, calls included; **with loop** = "
         "(Ir(N) − Ir(0)) / N adds the benchmark loop (random size, one store and "
         "one load). Instruction counts are exactly repeatable; they do not "
         "show cache misses or contention." % n, "",
         "| workload | allocator | version | per pair | with loop | loop alone |",
         "|---|---|---|---|---|---|"]
    mallocs = [a for a in allocs if a.kind == "malloc"]
    ver = {a.name: ((a.package + " ") if a.package else "") + (a.version or "")
           for a in mallocs}
    rank = {a.name: i for i, a in enumerate(mallocs)}
    rows.sort(key=lambda r: (CALLGRIND_WORKLOADS.index(r["workload"]),
                             rank.get(r["allocator"], 99)))
    for r in rows:
        L.append("| %s | %s | %s | %.1f | %.1f | %.1f |" % (
            r["workload"], r["allocator"], ver.get(r["allocator"], ""),
            r["per_pair"], r["per_pair_with_loop"], r["loop_per_pair"]))
    L.append("")
    if skipped:
        L.append("Skipped (not installed): %s. Install them with `%s`."
                 % (", ".join(skipped), APT_LINE))
        L.append("")
    if failures:
        L.append("## FAILURES")
        L.append("")
        for wn, an, msg in failures:
            L.append("- **%s / %s**: %s" % (wn, an, msg))
        L.append("")
    md = "\n".join(L)
    print(md)
    prefix = args.out or os.path.join(HERE, "results", "callgrind")
    os.makedirs(os.path.dirname(prefix), exist_ok=True)
    with open(prefix + ".md", "w") as f:
        f.write(md)
    with open(prefix + ".json", "w") as f:
        json.dump({"machine": meta, "n": n, "rows": rows,
                   "failures": [{"workload": a, "allocator": b, "error": c}
                                for a, b, c in failures]}, f, indent=1)
    log("runner: wrote %s.{md,json}" % os.path.relpath(prefix))
    return 1 if failures else 0


def find_missing(args, allocs, skipped, notes, bindir):
    """Binaries that were not built. A peer with none built at all (Boehm GC's
    runtime library without its header, say) is skipped with a note; any other
    missing binary, or a go build that failed, becomes a FAILED cell for that
    workload only: the rest is still measured. Returns {(workload, allocator):
    message}; edits allocs, skipped and notes in place."""
    build_log = os.path.join(os.path.dirname(bindir), "bench-build.log")
    why = {"boehm-gc": "libgc.so is installed but gc.h is not, so the "
                       "bench_*_boehm programs were not built (install libgc-dev)",
           "go": "go is on PATH but no bench_*_go program was built (see %s)"
                 % build_log}
    missing = {}
    for a in list(allocs):
        # Script workloads run an interpreter, not a program of the build.
        ws = [w for w in WORKLOADS if w.applies(a) and not w.script]
        gone = [w for w in ws if not os.path.exists(a.binary(bindir, w))]
        if not gone:
            continue
        failed_builds = [w for w in gone if os.path.exists(a.binary(bindir, w) + ".failed")]
        if a.name in why and len(gone) == len(ws) and not failed_builds:
            allocs.remove(a)
            skipped.append(a.name)
            notes.append("%s: %s" % (a.name, why[a.name]))
            continue
        for w in gone:
            exe = a.binary(bindir, w)
            if os.path.exists(exe + ".failed"):
                with open(exe + ".failed", errors="replace") as f:
                    tail = [t.strip() for t in f.read().strip().splitlines()[-4:]]
                missing[(w.name, a.name)] = ("not built: %s failed: %s"
                                             % (os.path.basename(exe), " | ".join(tail)))
            else:
                missing[(w.name, a.name)] = ("not built: %s is missing (see %s)"
                                             % (os.path.relpath(exe, ROOT), build_log))
    return missing


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[1])
    ap.add_argument("--build-dir", required=True,
                    help="the CMake build tree (bench binaries in <dir>/bench)")
    ap.add_argument("--quick", action="store_true",
                    help="CI mode: smaller runs, 3 rounds (about 3 minutes)")
    ap.add_argument("--callgrind", action="store_true",
                    help="count instructions per malloc+free pair instead")
    ap.add_argument("--callgrind-n", type=int, default=0,
                    help="pairs per callgrind run (default %d)" % CALLGRIND_N)
    ap.add_argument("--rounds", type=int, default=0,
                    help="measured rounds (default: 3 quick; full: 7 for the "
                         "malloc workloads, 5 for the GC ones)")
    ap.add_argument("--only", default="",
                    help="comma-separated workloads to run, or a kind: malloc, "
                         "gc (default: all)")
    ap.add_argument("--allocators", default="",
                    help="comma-separated allocators to run (default: all "
                         "installed; goalloc and glibc are always kept)")
    ap.add_argument("--peer", action="append", default=[], metavar="NAME=LIB.so",
                    help="an extra malloc to preload, e.g. a mimalloc built "
                         "from source (repeatable)")
    ap.add_argument("--timeout", type=int, default=0,
                    help="seconds before a run is killed (default: 20x the "
                         "reference's time in the workload (glibc; Boehm GC or "
                         "Go for the GC workloads), at least 10 s; at most 20 s "
                         "quick, 120 s full)")
    ap.add_argument("--out", default="",
                    help="output path prefix (default bench/results/latest "
                         "for full mode, quick for --quick, callgrind)")
    ap.add_argument("--list", action="store_true",
                    help="list workloads and detected allocators, then exit")
    args = ap.parse_args()

    bindir = os.path.join(os.path.abspath(args.build_dir), "bench")
    allocs, skipped, notes = detect_allocators(os.path.abspath(args.build_dir),
                                               args.peer)
    if args.allocators:
        keep = set(args.allocators.split(",")) | {"goalloc", "glibc"}
        allocs = [a for a in allocs if a.name in keep]

    missing = find_missing(args, allocs, skipped, notes, bindir)
    log("allocators: " + ", ".join(
        "%s%s (%s)" % (a.name, " [gc]" if a.kind == "gc" else "", a.version or "?")
        for a in allocs))
    if skipped:
        log("skipped, not installed: %s\n  install them with: %s"
            % (", ".join(skipped), APT_LINE))
    for n in notes:
        log("note: " + n)
    if args.list:
        for w in WORKLOADS:
            log("workload %-13s [%s] %s" % (w.name, w.kind, w.what))
        return 0
    if args.callgrind:
        return callgrind(args, allocs, skipped, notes, bindir)
    return bench(args, allocs, skipped, notes, bindir, missing)


if __name__ == "__main__":
    sys.exit(main())
