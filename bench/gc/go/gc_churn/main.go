// gc-churn in Go: the same algorithm as bench/gc/gc_churn.c (see the
// description there), single goroutine, default GOGC. Blobs are []uint64
// (pointer-free: Go never scans them), records are []pair, a pointer and a
// word per pair, so both have the C layout and size. Prints the same
// checksum as the C version.
package main

import (
	"math/bits"

	"goallocbench/common"
)

const (
	nLinks = 4
	ring   = 16
	golden = common.Golden
	hmul   = 0x100000001B3
)

type pair struct {
	p *uint64
	v uint64
}

const (
	empty  = 0
	blob   = 1
	record = 2
)

type slot struct {
	rec  []pair
	blob []uint64
	tag  uint64
	size uint32
	kind uint32
}

var (
	rng    common.Rng
	hash   uint64
	errors int64
	w      int64
	slots  []slot
)

func eat(v uint64) { hash = (hash ^ v) * hmul }

func blobStep(n int) int {
	if n >= 8192 {
		return 512
	}
	return 1
}

func makeBlob(size int, tag uint64) []uint64 {
	n := size / 8
	step := blobStep(n)
	b := make([]uint64, n)
	for k := 0; k < n; k += step {
		b[k] = tag ^ (uint64(k) * golden)
	}
	b[n-1] = tag ^ (uint64(n-1) * golden)
	return b
}

func checkBlob(b []uint64, size int, tag uint64) {
	n := size / 8
	step := blobStep(n)
	var diff uint64
	for k := 0; k < n; k += step {
		diff |= b[k] ^ (tag ^ (uint64(k) * golden))
		eat(b[k])
	}
	diff |= b[n-1] ^ (tag ^ (uint64(n-1) * golden))
	eat(b[n-1])
	if diff != 0 {
		errors++
	}
}

func makeRecord(size int, tag uint64) []pair {
	n := size / 16
	r := make([]pair, n)
	r[0] = pair{nil, tag}
	k := 1
	for ; k < n && k <= nLinks; k++ {
		s := &slots[rng.Uniform(0, uint64(w)-1)]
		if s.kind == blob {
			r[k] = pair{&s.blob[0], s.tag}
		} else {
			r[k] = pair{nil, 0}
		}
	}
	for ; k < n; k++ {
		r[k] = pair{nil, tag ^ (uint64(k) * golden)}
	}
	return r
}

func checkRecord(r []pair, size int, tag uint64) {
	n := size / 16
	var diff uint64
	if r[0].p != nil {
		diff |= 1
	}
	diff |= r[0].v ^ tag
	eat(r[0].v)
	k := 1
	for ; k < n && k <= nLinks; k++ {
		if r[k].p != nil {
			diff |= *r[k].p ^ r[k].v
			eat(*r[k].p)
		} else {
			diff |= r[k].v
		}
		eat(r[k].v)
	}
	for ; k < n; k++ {
		if r[k].p != nil {
			diff |= 1
		}
		diff |= r[k].v ^ (tag ^ (uint64(k) * golden))
		eat(r[k].v)
	}
	if diff != 0 {
		errors++
	}
}

func checkSlot(s *slot) {
	switch s.kind {
	case blob:
		checkBlob(s.blob, int(s.size), s.tag)
	case record:
		checkRecord(s.rec, int(s.size), s.tag)
	}
	eat(uint64(s.size))
}

func smallSize(r uint64) int {
	e := bits.TrailingZeros64((r >> 8) | (1 << 8))
	lo := uint64(16) << e
	sz := lo + (r>>24)%lo
	if sz > 4096 {
		sz = 4096
	}
	return int(sz &^ 15)
}

func bigSize(r uint64) int {
	e := (r >> 8) & 3
	lo := uint64(65536) << e
	sz := lo + (r>>24)%lo
	if sz > 1048576 {
		sz = 1048576
	}
	return int(sz &^ 15)
}

func makeSmall(s *slot, r uint64) {
	sz := smallSize(r)
	tag := rng.Next()
	if (r>>40)%3 == 0 {
		s.blob, s.rec, s.kind = makeBlob(sz, tag), nil, blob
	} else {
		s.rec, s.blob, s.kind = makeRecord(sz, tag), nil, record
	}
	s.tag = tag
	s.size = uint32(sz)
}

func makeBig(s *slot, r uint64) {
	sz := bigSize(r)
	tag := rng.Next()
	s.blob, s.rec, s.kind = makeBlob(sz, tag), nil, blob
	s.tag = tag
	s.size = uint32(sz)
}

func main() {
	n := common.Arg(1, 1000000)
	w = common.Arg(2, 100000)
	if w < 1 {
		w = 1
	}
	rng.Seed(42)
	t0 := common.Start()

	slots = make([]slot, w+ring)
	for i := int64(0); i < w; i++ {
		makeSmall(&slots[i], rng.Next())
	}
	rg := int64(0)
	for i := int64(0); i < n; i++ {
		r := rng.Next()
		var s *slot
		if r%100 == 0 {
			s = &slots[w+rg]
			rg = (rg + 1) % ring
			checkSlot(s)
			makeBig(s, r)
		} else {
			s = &slots[rng.Uniform(0, uint64(w)-1)]
			checkSlot(s)
			makeSmall(s, r)
		}
	}
	for i := range slots {
		checkSlot(&slots[i])
	}
	common.Report("gc-churn", n, common.Mix64(hash), errors, t0)
}
