#!/usr/bin/env bash
# bench/mini.sh — the comparison without python3 (a fresh Debian machine with
# only build-essential and cmake): goalloc against glibc, and against any of
# mimalloc / jemalloc / tcmalloc whose library is installed, on the malloc
# workloads. Same method as runner.py, smaller: one warm-up round, then
# interleaved rounds (A B C A B C ...), the median wall time and peak RSS of
# each (from bench_launch's wait4), and the median of the per-round ratios
# to goalloc; a run that fails or prints a different checksum from glibc's
# is marked FAILED. Install python3 for the full report (CSV/JSON, chart,
# GC workloads against Boehm GC and Go).
#   usage: bench/mini.sh BUILD_DIR [--quick]
set -u
BUILD=$1; shift
MODE=full; ROUNDS=5
[ "${1:-}" = "--quick" ] && { MODE=quick; ROUNDS=3; }
BIN="$BUILD/bench"
LAUNCH="$BIN/bench_launch"
TMP=$(mktemp -d); trap 'rm -rf "$TMP"' EXIT

# name binary quick-args full-args (as in runner.py's WORKLOADS)
WORKLOADS="malloc-pairs:malloc_pairs:40e6:250e6
malloc-batch:malloc_batch:20e6:80e6
churn:churn:3e6 65536:20e6 65536
larson:larson:6e6 2:40e6 2
xthread:xthread:4e6:1.5e7
threads-churn:threads_churn:1e7 8:5e7 8
false-sharing:false_sharing:2e8 2:1e9 2
realloc-grow:realloc_grow:2e6:1e7
large-alloc:large_alloc:1000 2:5000 2"

ALLOCS="goalloc glibc"
declare -A LIB=()
for p in mimalloc:libmimalloc.so jemalloc:libjemalloc.so.2 tcmalloc:libtcmalloc_minimal.so.4; do
  name=${p%%:*}; soname=${p#*:}
  path=$(ldconfig -p 2>/dev/null | awk -v s="$soname" '$1 ~ "^"s {print $NF; exit}')
  if [ -n "$path" ]; then LIB[$name]=$path; ALLOCS="$ALLOCS $name"; else SKIPPED="${SKIPPED:-} $name"; fi
done
[ -n "${SKIPPED:-}" ] && echo "bench: skipped (not installed):${SKIPPED}; install: sudo apt-get install libmimalloc-dev libjemalloc-dev libgoogle-perftools-dev libgc-dev golang-go python3 python3-matplotlib" >&2

median() { sort -g | awk '{a[NR]=$1} END {if (NR==0) print "nan"; else if (NR%2) print a[(NR+1)/2]; else print (a[NR/2]+a[NR/2+1])/2}'; }

run() { # run ALLOC WORKLOAD-BINARY ARGS... -> "wall_s rss_mib checksum" or FAILED
  local alloc=$1 bin=$2; shift 2
  local exe="$BIN/bench_$bin" env=()
  # goalloc as an explicit-free allocator: the workloads free everything.
  [ "$alloc" = goalloc ] && { exe="$BIN/bench_${bin}_goalloc"; env=(-e GOALLOC_GOGC=off); }
  [ -n "${LIB[$alloc]:-}" ] && env=(-e "LD_PRELOAD=${LIB[$alloc]}")
  [ -x "$exe" ] || { echo FAILED; return; }
  "$LAUNCH" -o "$TMP/res" -t 300 "${env[@]}" -- "$exe" "$@" >"$TMP/out" 2>&1 || { echo FAILED; return; }
  grep -q "status=0 signal=0" "$TMP/res" || { echo FAILED; return; }
  local ns kb sum
  ns=$(sed -n 's/.*wall_ns=\([0-9]*\).*/\1/p' "$TMP/res")
  kb=$(sed -n 's/.*maxrss_kb=\([0-9]*\).*/\1/p' "$TMP/res")
  sum=$(grep -i "checksum" "$TMP/out" | head -1 | tr -d ' ')
  awk -v n="$ns" -v k="$kb" -v s="$sum" 'BEGIN {printf "%.4f %.1f %s\n", n/1e9, k/1024, s}'
}

echo "# goalloc — malloc workloads ($MODE mode, $ROUNDS rounds, no python3: bench/mini.sh)"
echo
echo "- date: $(date -u '+%Y-%m-%d %H:%M UTC'); commit: $(git -C "$BUILD/.." rev-parse --short HEAD 2>/dev/null || echo '?'); CPU: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $(nproc) cores"
echo "- each cell: median wall time in s / median peak RSS in MiB (median time ratio allocator ÷ goalloc; > 1 means goalloc is faster)"
echo
printf '| workload |'; for a in $ALLOCS; do printf ' %s |' "$a"; done; echo
printf '|---|'; for a in $ALLOCS; do printf -- '---|'; done; echo
status=0
while IFS=: read -r name bin qargs fargs; do
  args=$fargs; [ $MODE = quick ] && args=$qargs
  declare -A T=() R=() S=()
  for r in $(seq 0 "$ROUNDS"); do   # round 0 is the warm-up
    for a in $ALLOCS; do
      # shellcheck disable=SC2086
      out=$(run "$a" "$bin" $args)
      if [ "$out" = FAILED ]; then T[$a]=FAILED; continue; fi
      [ "$r" = 0 ] && { S[$a]=${out##* }; continue; }
      T[$a]="${T[$a]:-} ${out%% *}"
      rest=${out#* }; R[$a]="${R[$a]:-} ${rest%% *}"
    done
  done
  printf '| %s |' "$name"
  g_times=(${T[goalloc]:-})
  for a in $ALLOCS; do
    if [ "${T[$a]:-}" = FAILED ] || [ -z "${T[$a]:-}" ] ||
       { [ -n "${S[glibc]:-}" ] && [ "${S[$a]:-}" != "${S[glibc]}" ]; }; then
      printf ' FAILED |'; status=1; continue
    fi
    t=$(echo ${T[$a]} | tr ' ' '\n' | median)
    m=$(echo ${R[$a]} | tr ' ' '\n' | median)
    times=(${T[$a]})
    ratio=$(for i in "${!times[@]}"; do
              [ -n "${g_times[$i]:-}" ] && awk -v x="${times[$i]}" -v g="${g_times[$i]}" 'BEGIN {printf "%.3f\n", x/g}'
            done | median)
    printf ' %s / %s (%s) |' "$t" "$m" "$ratio"
  done
  echo
  unset T R S
done <<< "$WORKLOADS"
# runner.py's real-program workload runs python3, which this machine lacks.
printf '| python |'; for a in $ALLOCS; do printf ' skipped |'; done; echo
echo
echo "python: skipped, python3 is not installed (it is the workload's program)."
exit $status
