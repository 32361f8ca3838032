#!/usr/bin/env bash
# run.sh CASE OVERRIDE_SO BINDIR — one override test (registered with ctest
# by src/override.cmake as override_CASE).
#
# Runs a real program twice, in fresh directories: once as installed
# (glibc's malloc) and once with goalloc as malloc (LD_PRELOAD=OVERRIDE_SO,
# or a binary linked with libgoalloc-override.a). Passes when
#   - both exit with the same status and print the same stdout, and
#   - the goalloc run shows goalloc served it: GOALLOC_VERBOSE's start-up
#     line and GOALLOC_SHOW_STATS's exit lines (one per process), whose
#     allocations add up to at least the case's minimum.
# BINDIR holds the test programs built by src/override.cmake. A program that
# is not installed fails the test with the Debian package to install
# (.ci/packages lists them for CI).
set -uo pipefail

case=${1:?case} so=${2:?override .so} bindir=${3:?bin dir}
here=$(cd "$(dirname "$0")" && pwd)
work=$(mktemp -d "${TMPDIR:-/tmp}/goalloc-override-$case.XXXXXX")
trap 'rm -rf "$work"' EXIT

fail() { echo "FAIL override_$case: $*" >&2; exit 1; }
need() { # need COMMAND DEBIAN_PACKAGE
  command -v "$1" >/dev/null 2>&1 && return 0
  # In CI (which installs .ci/packages) a missing program is a failure; on a
  # developer's fresh machine the case is skipped (ctest: exit code 77).
  if [ -n "${CI:-}" ] && [ "${CI:-}" != false ]; then
    fail "'$1' is not installed: apt-get install $2 (listed in .ci/packages)"
  fi
  echo "SKIPPED: '$1' is not installed (apt-get install $2)" >&2
  exit 77
}
[ -f "$so" ] || fail "override library $so not built"

# A deterministic environment for both runs.
export LC_ALL=C TZ=UTC HOME=$work/home
mkdir -p "$HOME"
unset GOALLOC_SHOW_STATS GOALLOC_VERBOSE LD_PRELOAD

min_allocs=1000    # each case may raise it
plain_bin="" ga_bin="" ga_preload=$so

# run_pair: run the case's body() in $work/plain and $work/goalloc and judge.
run_pair() {
  mkdir -p "$work/plain" "$work/goalloc"
  (cd "$work/plain" && BIN=$plain_bin body) >"$work/plain.out" 2>"$work/plain.err"
  local rc_plain=$?
  (cd "$work/goalloc" && export BIN=$ga_bin GOALLOC_SHOW_STATS=1 GOALLOC_VERBOSE=1 &&
    if [ -n "$ga_preload" ]; then export LD_PRELOAD=$ga_preload; fi && body) \
    >"$work/goalloc.out" 2>"$work/goalloc.err"
  local rc_ga=$?
  if [ "$rc_plain" != 0 ]; then
    tail -20 "$work/plain.err" >&2
    fail "the program failed without the override too (exit $rc_plain)"
  fi
  if [ "$rc_ga" != 0 ]; then
    grep -v '^goalloc: \(stats\|initialised\)' "$work/goalloc.err" | tail -20 >&2
    fail "exit status $rc_ga with goalloc as malloc (0 without)"
  fi
  if ! cmp -s "$work/plain.out" "$work/goalloc.out"; then
    diff -u "$work/plain.out" "$work/goalloc.out" | head -40 >&2
    fail "output differs with goalloc as malloc"
  fi
  if grep -q '^goalloc: .*\(abort\|fatal\)' "$work/goalloc.err"; then
    grep '^goalloc: ' "$work/goalloc.err" | head >&2
    fail "goalloc reported an error"
  fi
  grep -q '^goalloc: initialised' "$work/goalloc.err" ||
    fail "no GOALLOC_VERBOSE line: goalloc was not loaded"
  local procs allocs
  procs=$(grep -c '^goalloc: stats' "$work/goalloc.err")
  allocs=$(sed -n 's/^goalloc: stats (pid [0-9]*): \([0-9]*\) allocations.*/\1/p' \
    "$work/goalloc.err" | awk '{s += $1} END {print s + 0}')
  [ "$procs" -gt 0 ] || fail "no GOALLOC_SHOW_STATS line: goalloc's exit hook did not run"
  [ "$allocs" -ge "$min_allocs" ] ||
    fail "goalloc served only $allocs allocations (expected >= $min_allocs)"
  echo "override_$case: same output ($(wc -l <"$work/plain.out") lines);" \
    "goalloc served $allocs allocations in $procs process(es)"
  grep '^goalloc: stats' "$work/goalloc.err" | sort -t' ' -k5 -n -r | head -3
}

case $case in
python)
  # Prefer the distribution's interpreter over version-manager shims.
  py=/usr/bin/python3
  [ -x "$py" ] || { need python3 python3; py=$(command -v python3); }
  export PY=$py PYTHONMALLOC=malloc PYTHONHASHSEED=0
  body() { "$PY" "$here/churn.py"; }
  min_allocs=1000000
  ;;
sqlite)
  need sqlite3 sqlite3
  body() {
    sqlite3 test.db <<'SQL'
PRAGMA journal_mode = WAL;
CREATE TABLE t(id INTEGER PRIMARY KEY, grp INTEGER, name TEXT, payload BLOB);
WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 150000)
INSERT INTO t SELECT i, (i * 7919) % 1000, 'name-' || ((i * 104729) % 150000),
                     zeroblob(i % 300) FROM n;
CREATE INDEX t_name ON t(name);
CREATE TABLE g AS SELECT grp, count(*) AS c, sum(length(payload)) AS bytes
                  FROM t GROUP BY grp;
SELECT count(*), sum(grp), sum(length(payload)) FROM t;
SELECT grp, c, bytes FROM g ORDER BY bytes DESC, grp LIMIT 5;
SELECT name FROM t WHERE name LIKE 'name-1234%' ORDER BY name LIMIT 5;
SELECT count(*) FROM t JOIN g USING (grp) WHERE g.c > 140;
UPDATE t SET name = upper(name) WHERE id % 10 = 0;
DELETE FROM t WHERE id % 3 = 0;
VACUUM;
SELECT count(*), count(DISTINCT name), max(id) FROM t;
SELECT group_concat(name, ',') FROM (SELECT name FROM t ORDER BY name DESC LIMIT 8);
PRAGMA integrity_check;
SQL
  }
  min_allocs=100000
  ;;
git)
  need git git
  # A generated tree: 40 directories of 30 files, then changes.
  mkdir -p "$work/src"
  awk -v dir="$work/src" 'BEGIN {
      x = 7
      for (d = 0; d < 40; d++) {
        system("mkdir -p " dir "/d" d)
        for (f = 0; f < 30; f++) {
          file = dir "/d" d "/f" f ".txt"
          n = 5 + (d * 31 + f) % 60
          for (l = 0; l < n; l++) {
            x = (x * 1103515245 + 12345) % 2147483648
            printf "line %d of %d/%d: %d\n", l, d, f, x > file
          }
          close(file)
        }
      }
    }'
  export GIT_CONFIG_NOSYSTEM=1 GIT_AUTHOR_NAME=goalloc GIT_AUTHOR_EMAIL=ga@example.org \
    GIT_COMMITTER_NAME=goalloc GIT_COMMITTER_EMAIL=ga@example.org \
    GIT_AUTHOR_DATE='2024-01-01T00:00:00Z' GIT_COMMITTER_DATE='2024-01-01T00:00:00Z' \
    SRC=$work/src
  body() {
    git init -q -b main repo && cd repo &&
      cp -r "$SRC"/. . &&
      git add . && git commit -q -m "generated tree" &&
      for d in 3 7 11; do
        sed -i 's/line 1 /LINE 1 /' d$d/*.txt
        git mv d$d/f0.txt d$d/renamed.txt
        git commit -q -am "change d$d"
      done &&
      git log --stat --format='%H %s' &&
      git diff --stat HEAD~3 HEAD &&
      git gc -q && git count-objects -v | grep -v size &&
      git fsck --no-progress &&
      git rev-list --count HEAD
  }
  min_allocs=20000
  ;;
gcc)
  need gcc gcc
  # A generated C file: 400 functions with loops, structs and string work.
  {
    echo '#include <stdio.h>'
    echo '#include <string.h>'
    echo 'struct s { int a[16]; char name[32]; double d; };'
    for i in $(seq 0 399); do
      cat <<EOF
static int f$i(struct s *p, int n) {
  int acc = $i;
  for (int k = 0; k < n; k++) { p->a[k & 15] += k * $i; acc ^= p->a[(k + $i) & 15]; }
  snprintf(p->name, sizeof p->name, "f$i-%d", acc & 0xff);
  p->d += acc * 0.5;
  return acc + (int)strlen(p->name);
}
EOF
    done
    echo 'int main(void) { struct s v; memset(&v, 0, sizeof v); long t = 0;'
    for i in $(seq 0 399); do echo "  t += f$i(&v, $((i % 37 + 3)));"; done
    echo '  printf("%ld %s %.1f\n", t, v.name, v.d); return 0; }'
  } >"$work/gen.c"
  export GEN=$work/gen.c
  body() {
    gcc -O2 -S -o gen.s "$GEN" && gcc -O2 -o gen "$GEN" && ./gen &&
      grep -v '^\s*\.ident' gen.s | sha256sum | cut -c1-16
  }
  min_allocs=10000
  ;;
sort)
  need sort coreutils
  awk 'BEGIN { x = 1; for (i = 0; i < 600000; i++) {
      x = (x * 1103515245 + 12345) % 2147483648
      printf "%d %s-%d\n", x % 100000, substr("qwertyuiopasdfghjklzxcvbnm", x % 20 + 1, 6), i } }' \
    >"$work/data.txt"
  export DATA=$work/data.txt
  body() {
    sort --parallel=2 -S 64M "$DATA" | sha256sum | cut -c1-16 &&
      sort --parallel=2 -S 64M -n -k1,1 -k2,2r "$DATA" | sha256sum | cut -c1-16 &&
      sort --parallel=2 -S 8M -T . -u -k2,2 "$DATA" | wc -l
  }
  min_allocs=10
  ;;
xz)
  need xz xz-utils
  awk 'BEGIN { x = 3; for (i = 0; i < 400000; i++) {
      x = (x * 1103515245 + 12345) % 2147483648
      printf "record %d value %d tag %s\n", i, x % 1000, (x % 7 == 0 ? "seven" : "other") } }' \
    >"$work/data.txt"
  export DATA=$work/data.txt
  body() {
    xz -T2 -1 -c "$DATA" >data.xz && sha256sum <data.xz | cut -c1-16 &&
      xz -T2 -d -c data.xz | cmp - "$DATA" && echo round trip ok &&
      xz -T2 -e -0 -c "$DATA" | sha256sum | cut -c1-16
  }
  min_allocs=10
  ;;
cxx_threads)
  plain_bin=$bindir/override_cxx_threads ga_bin=$plain_bin
  body() { "$BIN"; }
  min_allocs=200000
  ;;
cxx_threads_static)
  # The same C++ program linked with libgoalloc-override.a: no preload.
  plain_bin=$bindir/override_cxx_threads ga_bin=$bindir/override_cxx_threads_static
  ga_preload=""
  body() { "$BIN"; }
  min_allocs=200000
  ;;
fork)
  plain_bin=$bindir/override_fork ga_bin=$plain_bin
  body() { "$BIN"; }
  min_allocs=50000
  ;;
threads)
  plain_bin=$bindir/override_threads ga_bin=$plain_bin
  body() { "$BIN"; }
  min_allocs=1000000
  ;;
ns_solo)
  plain_bin=$bindir/override_ns_solo ga_bin=$plain_bin
  body() { "$BIN"; }
  min_allocs=100000
  ;;
static_link)
  # Only meaningful linked with libgoalloc-override.a: it checks with ga_owns
  # that libc's own allocations are goalloc objects. The plain run prints
  # the line it is expected to print.
  plain_bin="" ga_bin=$bindir/override_static_link ga_preload=""
  body() { if [ -n "$BIN" ]; then "$BIN"; else echo "static link: all checks ok"; fi; }
  min_allocs=10
  ;;
*)
  fail "unknown case"
  ;;
esac

run_pair
