// binary-trees in Go: the same algorithm as bench/gc/binary_trees.c (see the
// description there), single goroutine, default GOGC. Prints the same
// checksum as the C version.
package main

import (
	"fmt"
	"os"

	"goallocbench/common"
)

type node struct{ left, right *node }

var nodesMade int64

func bottomUp(depth int) *node {
	var l, r *node
	if depth > 0 {
		l = bottomUp(depth - 1)
		r = bottomUp(depth - 1)
	}
	nodesMade++
	return &node{l, r}
}

func check(n *node) int64 {
	if n.left == nil {
		return 1
	}
	return 1 + check(n.left) + check(n.right)
}

var checksum uint64
var errors int64

func account(depth int, iters, total int64) {
	want := iters * ((int64(2) << depth) - 1)
	if total != want {
		fmt.Fprintf(os.Stderr, "binary-trees: depth %d x %d: %d nodes, expected %d\n",
			depth, iters, total, want)
		errors++
	}
	checksum = common.Mix64(checksum ^ (uint64(depth) << 56) ^ uint64(total))
}

func main() {
	maxDepth := int(common.Arg(1, 16))
	if maxDepth < 6 {
		maxDepth = 6
	}
	t0 := common.Start()

	stretch := bottomUp(maxDepth + 1)
	account(maxDepth+1, 1, check(stretch))
	stretch = nil

	longLived := bottomUp(maxDepth)

	for d := 4; d <= maxDepth; d += 2 {
		iters, total := int64(1)<<(maxDepth-d+4), int64(0)
		for i := int64(0); i < iters; i++ {
			t := bottomUp(d)
			total += check(t)
		}
		account(d, iters, total)
	}
	account(maxDepth, 1, check(longLived))
	common.Report("binary-trees", nodesMade, checksum, errors, t0)
}
