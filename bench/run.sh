#!/usr/bin/env bash
# bench/run.sh — the one entry point of goalloc's benchmarks.
#
#   bash bench/run.sh              full mode (make bench): 7 rounds (GC: 5), ~1-9 s runs
#   bash bench/run.sh --quick      CI mode (make bench-quick): 3 rounds, about 3 min
#   bash bench/run.sh --callgrind  instructions per malloc+free pair (valgrind)
#   bash bench/run.sh --help       every option of the runner (bench/runner.py)
#
# Builds goalloc in Release mode and every workload into bench/build (override
# with BENCH_BUILD_DIR), then hands over to bench/runner.py, which detects the
# installed allocators, runs, and writes bench/results/. Needs only
# build-essential, cmake and python3; peers that are not installed are skipped
# and named, with the apt-get line that installs them.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BUILD="${BENCH_BUILD_DIR:-$ROOT/bench/build}"
JOBS="$(nproc 2>/dev/null || echo 2)"

# A Python 3 that can draw the chart (Debian's, with python3-matplotlib) is
# preferred over the first python3 on PATH (which may be a private install).
PY=""
for cand in /usr/bin/python3 "$(command -v python3 || true)"; do
  [ -n "$cand" ] && [ -x "$cand" ] || continue
  [ -z "$PY" ] && PY="$cand"
  if "$cand" -c 'import matplotlib' >/dev/null 2>&1; then PY="$cand"; break; fi
done
NOPY=""
if [ -z "$PY" ]; then
  echo "bench: python3 is not installed: running the reduced comparison (bench/mini.sh);" \
       "sudo apt-get install python3 python3-matplotlib for the full report" >&2
  NOPY=1
fi
[ -n "$NOPY" ] || case " $* " in
  *" -h "*|*" --help "*)
    sed -n '2,13p' "$0" | sed 's/^# \{0,1\}//'
    exec "$PY" "$ROOT/bench/runner.py" --help ;;
  *" --callgrind "*)
    command -v valgrind >/dev/null || {
      echo "bench: --callgrind needs valgrind: sudo apt-get install valgrind" >&2; exit 1; } ;;
esac

mkdir -p "$BUILD"
LOG="$BUILD/bench-build.log"
echo "bench: building goalloc (Release) and the workloads in ${BUILD#$ROOT/} ..." >&2
if ! cmake -S "$ROOT" -B "$BUILD" -DCMAKE_BUILD_TYPE=Release >"$LOG" 2>&1; then
  tail -n 40 "$LOG" >&2
  echo "bench: cmake failed (full log: $LOG)" >&2
  exit 1
fi
if ! cmake --build "$BUILD" -j "$JOBS" --target bench_all >>"$LOG" 2>&1; then
  # One workload that does not compile must not hide all the others: build
  # everything that can be built; the runner reports each missing program as
  # FAILED in its own cell.
  KEEP_GOING="-k"; [ -f "$BUILD/build.ninja" ] && KEEP_GOING="-k 0"
  # shellcheck disable=SC2086
  cmake --build "$BUILD" -j "$JOBS" --target bench_all -- $KEEP_GOING >>"$LOG" 2>&1 || true
  grep -E "error|Error" "$LOG" | tail -n 20 >&2
  echo "bench: part of the build failed (full log: $LOG); measuring what was built" >&2
  if [ ! -x "$BUILD/bench/bench_launch" ]; then
    echo "bench: bench_launch was not built: nothing can be measured" >&2
    exit 1
  fi
fi

if [ -n "$NOPY" ]; then
  case " $* " in *" --quick "*) exec bash "$ROOT/bench/mini.sh" "$BUILD" --quick ;; esac
  exec bash "$ROOT/bench/mini.sh" "$BUILD"
fi
exec "$PY" "$ROOT/bench/runner.py" --build-dir "$BUILD" "$@"
