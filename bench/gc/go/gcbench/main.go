// gcbench in Go: the same algorithm as bench/gc/gcbench.c (see the
// description there), single goroutine, default GOGC. Prints the same
// checksum as the C version.
package main

import (
	"fmt"
	"math"
	"os"

	"goallocbench/common"
)

type gnode struct {
	left, right *gnode
	i, j        int32
}

var nodesMade int64
var serial int32
var checksum uint64
var errors int64

func newNode(l, r *gnode, i, j int32) *gnode {
	nodesMade++
	return &gnode{l, r, i, j}
}

func treeSize(d int) int64 { return (int64(2) << d) - 1 }

func populate(depth int, n *gnode) {
	if depth <= 0 {
		return
	}
	depth--
	n.left = newNode(nil, nil, int32(depth), serial)
	serial++
	n.right = newNode(nil, nil, int32(depth), 0)
	populate(depth, n.left)
	n.right.j = serial
	serial++
	populate(depth, n.right)
}

func topDown(depth int) *gnode {
	serial = 0
	root := newNode(nil, nil, int32(depth), serial)
	serial++
	populate(depth, root)
	return root
}

func makeTree(depth int) *gnode {
	if depth <= 0 {
		n := newNode(nil, nil, 0, serial)
		serial++
		return n
	}
	l := makeTree(depth - 1)
	r := makeTree(depth - 1)
	n := newNode(l, r, int32(depth), serial)
	serial++
	return n
}

func bottomUp(depth int) *gnode {
	serial = 0
	return makeTree(depth)
}

func walk(n *gnode, depth int, bad *int64) int64 {
	if n.i != int32(depth) {
		*bad++
	}
	if depth == 0 {
		if n.left != nil || n.right != nil {
			*bad++
		}
		return int64(n.j)
	}
	if n.left == nil || n.right == nil {
		*bad++
		return int64(n.j)
	}
	return int64(n.j) + walk(n.left, depth-1, bad) + walk(n.right, depth-1, bad)
}

func verify(what string, t *gnode, depth int) {
	var bad int64
	s := walk(t, depth, &bad)
	size := treeSize(depth)
	want := size * (size - 1) / 2
	if bad != 0 || s != want {
		fmt.Fprintf(os.Stderr, "gcbench: %s tree of depth %d: %d bad nodes, serial sum %d, expected %d\n",
			what, depth, bad, s, want)
		errors++
	}
	checksum = common.Mix64(checksum ^ uint64(s) ^ (uint64(depth) << 58))
}

func main() {
	depth := int(common.Arg(1, 16))
	asize := common.Arg(2, 500000)
	if depth < 4 {
		depth = 4
	}
	if asize < 2 {
		asize = 2
	}
	stretch, longLivedDepth, minDepth := depth+2, depth, 4
	t0 := common.Start()

	t := bottomUp(stretch)
	verify("stretch", t, stretch)
	t = nil

	longLived := topDown(longLivedDepth)
	array := make([]float64, asize)
	for i := range array {
		if i != 0 {
			array[i] = 1.0 / float64(i)
		}
	}

	for d := minDepth; d <= depth; d += 2 {
		iters := 2 * treeSize(stretch) / treeSize(d)
		for k := int64(0); k < iters; k++ {
			t = topDown(d)
			if k&7 == 0 {
				verify("top-down", t, d)
			}
		}
		for k := int64(0); k < iters; k++ {
			t = bottomUp(d)
			if k&7 == 0 {
				verify("bottom-up", t, d)
			}
		}
		checksum = common.Mix64(checksum ^ uint64(iters))
	}
	t = nil

	verify("long-lived", longLived, longLivedDepth)
	var ah uint64
	var abad int64
	for i, v := range array {
		want := 0.0
		if i != 0 {
			want = 1.0 / float64(i)
		}
		if v != want {
			abad++
		}
		ah = (ah ^ math.Float64bits(v)) * 0x100000001B3
	}
	if abad != 0 {
		fmt.Fprintf(os.Stderr, "gcbench: %d of %d array elements changed\n", abad, asize)
		errors++
	}
	checksum = common.Mix64(checksum ^ ah)
	common.Report("gcbench", nodesMade, checksum, errors, t0)
}
