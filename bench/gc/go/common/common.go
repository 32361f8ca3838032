// Package common is the Go side of bench/bench_common.h and bench/gc/gc_common.h:
// the same xorshift64* sequence, the same mixing function and the same report
// format, so that a Go workload prints the checksum its C twin prints and the
// runner (bench/runner.py) reads both alike.
package common

import (
	"fmt"
	"os"
	"runtime"
	"strconv"
	"time"
)

// Rng is bench_rng: xorshift64*.
type Rng struct{ s uint64 }

// Seed is bench_rng_seed.
func (r *Rng) Seed(seed uint64) {
	r.s = seed*0x9E3779B97F4A7C15 + 0x632BE59BD9B4E019
	if r.s == 0 {
		r.s = 1
	}
}

// Next is bench_rng_next.
func (r *Rng) Next() uint64 {
	x := r.s
	x ^= x >> 12
	x ^= x << 25
	x ^= x >> 27
	r.s = x
	return x * 0x2545F4914F6CDD1D
}

// Uniform is bench_uniform: a draw in [lo, hi].
func (r *Rng) Uniform(lo, hi uint64) uint64 {
	return lo + ((r.Next()>>32)*(hi-lo+1))>>32
}

// Golden is BENCH_GOLDEN.
const Golden = 0x9E3779B97F4A7C15

// Mix64 is bench_mix64 (splitmix64's finaliser).
func Mix64(z uint64) uint64 {
	z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9
	z = (z ^ (z >> 27)) * 0x94D049BB133111EB
	return z ^ (z >> 31)
}

// Arg is bench_arg: os.Args[i] as a count ("1e6" accepted), or dflt.
func Arg(i int, dflt int64) int64 {
	if len(os.Args) <= i {
		return dflt
	}
	v, err := strconv.ParseFloat(os.Args[i], 64)
	if err != nil || v < 0 {
		fmt.Fprintf(os.Stderr, "bad count '%s'\n", os.Args[i])
		os.Exit(2)
	}
	return int64(v)
}

// Start is the workload's t0 (bench_now_ms).
func Start() time.Time { return time.Now() }

// Report prints gc_report's lines and exits (status 3 if errors).
func Report(name string, ops int64, checksum uint64, errors int64, t0 time.Time) {
	ms := float64(time.Since(t0).Nanoseconds()) / 1e6
	var st runtime.MemStats
	runtime.ReadMemStats(&st)
	seen := st.NumGC
	if seen > 256 {
		seen = 256
	}
	var mx uint64
	for i := uint32(0); i < seen; i++ {
		if st.PauseNs[i] > mx {
			mx = st.PauseNs[i]
		}
	}
	fmt.Printf("workload: %s\nallocator: go\nops: %d\nchecksum: %016x\nerrors: %d\n"+
		"time_ms: %.3f\ngc_collections: %d\ngc_pause_total_ms: %.3f\n"+
		"gc_pause_max_ms: %.3f\ngc_pauses_seen: %d\ngo_version: %s\n",
		name, ops, checksum, errors, ms, st.NumGC, float64(st.PauseTotalNs)/1e6,
		float64(mx)/1e6, seen, runtime.Version())
	if errors != 0 {
		fmt.Fprintf(os.Stderr, "FAIL: %s: %d objects did not verify\n", name, errors)
		os.Exit(3)
	}
	os.Exit(0)
}
