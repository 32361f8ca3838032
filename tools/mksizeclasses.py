#!/usr/bin/env python3
"""Generate goalloc's size-class tables: src/sizeclasses.h and src/sizeclasses.c.

Usage: python3 tools/mksizeclasses.py [--out DIR]    (default DIR: <repo>/src)

This re-implements the derivation rules of Go's runtime/mksizeclasses.go
(docs: go-runtime-reference.md section 2.1), so the classes are Go's:

 1. Walk `size` from 8 to 32768 in steps of `align` (initially 8). At each
    power of two the step changes: >= 2048 -> 256, >= 128 -> size/8,
    >= 32 -> 16. Spacing classes by about 1/8 of their size bounds the
    round-up waste at 12.5%.
 2. A class's span is the smallest multiple of the page size whose tail
    (the bytes left over after the last whole object) is <= 1/8 of the span.
 3. If a size needs the same number of pages and gives the same number of
    objects as the previous class, it replaces that class: the larger size
    costs nothing and saves a class.
 4. Afterwards every class grows to the largest multiple of 128 that still
    fits the same number of objects in its span (e.g. 8448 -> 9472).

It then computes the division magic per class, proves it by brute force and
writes both files. Output is deterministic; the test tests/test_sizeclasses.c
regenerates into a temporary directory and compares byte for byte.
"""
import argparse
import os
import sys

PAGE_SHIFT = 13
PAGE_SIZE = 1 << PAGE_SHIFT
MAX_SMALL_SIZE = 32768
TINY_SIZE = 16
SMALL_SIZE_DIV = 8
SMALL_SIZE_MAX = 1024
LARGE_SIZE_DIV = 128
NUM_SIZE_CLASSES = 68


class Class:
    def __init__(self, size, npages):
        self.size, self.npages = size, npages

    @property
    def span(self):
        return self.npages * PAGE_SIZE

    @property
    def nelems(self):
        return self.span // self.size if self.size else 0


def check(ok, msg):
    if not ok:  # not `assert`: the checks must survive python3 -O
        sys.exit("mksizeclasses: " + msg)


def is_pow2(x):
    return x & (x - 1) == 0


def make_classes():
    classes = [Class(0, 0)]  # class 0: dummy, "no class" / large object
    align = 8
    size = align
    while size <= MAX_SMALL_SIZE:
        if is_pow2(size):
            if size >= 2048:
                align = 256
            elif size >= 128:
                align = size // 8
            elif size >= 32:
                align = 16
        check(is_pow2(align), f"step {align} not a power of two")
        allocsize = PAGE_SIZE
        while allocsize % size > allocsize // 8:
            allocsize += PAGE_SIZE
        npages = allocsize // PAGE_SIZE
        prev = classes[-1]
        if len(classes) > 1 and npages == prev.npages and \
                allocsize // size == allocsize // prev.size:
            prev.size = size  # merge: same span, same count, bigger objects
        else:
            classes.append(Class(size, npages))
        size += align

    for c in classes[1:]:  # grow pass
        c.size = max(c.size, (c.span // c.nelems) & ~(LARGE_SIZE_DIV - 1))

    # goalloc's one change to Go's table, made after measurement (see
    # docs/design.md, "Two-page spans"): a class whose span Go makes one page
    # gets two. Fewer, fuller spans mean fewer span records, bitmap words and
    # refills per byte: churn 0.90x the time, gcbench 0.85x, malloc-batch
    # 0.93x; four pages helped churn more but cost malloc-batch and xthread.
    # The object sizes stay Go's.
    for c in classes[1:]:
        if c.npages == 1:
            c.npages = 2

    check(len(classes) == NUM_SIZE_CLASSES,
          f"{len(classes)} classes, want {NUM_SIZE_CLASSES}")
    for c in classes[1:]:  # the two lookup tables rely on these granularities
        step = SMALL_SIZE_DIV if c.size <= SMALL_SIZE_MAX else LARGE_SIZE_DIV
        check(c.size % step == 0, f"size {c.size} not a multiple of {step}")
    return classes


def div_magic(c):
    """(off * m) >> 32 == off // size for every offset in a span, checked."""
    if c.size == 0:
        return 0
    m = (2**32 - 1) // c.size + 1
    for off in range(c.span + 1):
        check((off * m) >> 32 == off // c.size,
              f"divMul {m} wrong for size {c.size} at offset {off}")
    return m


def size_table(classes, lo, hi, step):
    """Entry i: the smallest class whose size >= lo + i*step."""
    table, ci = [], 0
    for s in range(lo, hi + 1, step):
        while classes[ci].size < s:
            ci += 1
        table.append(ci)
    return table


def c_array(ctype, name, dim, values, const=True):
    lines, line = [f"{'const ' if const else ''}{ctype} {name}[{dim}] = {{"], " "
    for v in values:  # fill lines up to 80 columns
        if len(line) + len(f" {v},") > 80:
            lines.append(line)
            line = " "
        line += f" {v},"
    return "\n".join(lines + [line, "};"]) + "\n"


def analysis(classes):
    """Go's sizeclasses.go comment: what each class costs at worst."""
    rows = [" * class  bytes/obj  bytes/span  objects  tail waste  max waste  min align"]
    for i, c in enumerate(classes[1:], 1):
        tail = c.span - c.size * c.nelems
        worst = ((c.size - classes[i - 1].size - 1) * c.nelems + tail) / c.span
        align = 1 << min((c.size & -c.size).bit_length() - 1, PAGE_SHIFT)
        rows.append(f" * {i:5d} {c.size:10d} {c.span:11d} {c.nelems:8d} {tail:11d}"
                    f" {100 * worst:9.2f}% {align:10d}")
    return "\n".join(rows)


HEADER = """\
/*
 * sizeclasses.h — GENERATED by tools/mksizeclasses.py; do not edit.
 * Change the generator and rerun it: python3 tools/mksizeclasses.py
 *
 * Go's size classes. A small request (1..GA_MAX_SMALL_SIZE bytes) is rounded
 * up to one of GA_NUM_SIZE_CLASSES-1 object sizes; class 0 means "no class"
 * (a large object, a whole number of pages of its own). The tables:
 *   ga__class_to_size[c]     bytes per object of class c
 *   ga__class_to_npages[c]   pages (GA_PAGE_SIZE) in one span of class c
 *   ga__class_to_nelems[c]   objects per span = npages*GA_PAGE_SIZE/size
 *   ga__class_to_divmagic[c] m with (off*m)>>32 == off/size for every byte
 *                            offset off in a span (object index w/o divide)
 *   ga__size_to_class8[i]    smallest class with size >= i*8   (<= 1024 B)
 *   ga__size_to_class128[i]  smallest class with size >= 1024 + i*128
 * Entries for class 0 are 0. A span class is (class << 1) | noscan, hence
 * GA_NUM_SPAN_CLASSES = 2*GA_NUM_SIZE_CLASSES. The per-class analysis
 * (tail and maximum waste, alignment) is in sizeclasses.c.
 */
#ifndef GA_SIZECLASSES_H
#define GA_SIZECLASSES_H

#include <stddef.h>
#include <stdint.h>

"""

FOOTER = """
/* size -> class, Go's rule (size in 1..GA_MAX_SMALL_SIZE). Classes up to
 * 1024 bytes are multiples of 8 and larger ones multiples of 128, so two
 * small tables give the exact smallest class that fits. */
static inline unsigned ga__size_to_class(size_t size) {
  return size <= GA_SMALL_SIZE_MAX - 8 ? ga__size_to_class8[(size + 7) >> 3]
                                       : ga__size_to_class128[(size - GA_SMALL_SIZE_MAX + 127) >> 7];
}

/* size -> class for malloc and friends (size in 1..GA_MAX_SMALL_SIZE).
 * The table starts out glibc's: Go's rule, except that 17..24 bytes go to
 * the 32-byte class, because the malloc drop-in must align every object of
 * >= 16 bytes to 16 (glibc's guarantee; GCC's x86-64 vectoriser relies on
 * it) and 24-byte slots are only 8-byte aligned at every other index. Every
 * other class from 16 bytes up is a multiple of 16, and spans start on page
 * boundaries, so their objects are 16-byte aligned. libgoalloc's own API
 * switches entry 3 back to Go's 24-byte class when it is loaded (malloc.c
 * ga__use_go_classes): the drop-in's first allocations come before any
 * constructor runs, so the safe rule must be the one in place from the
 * start. */
static inline unsigned ga__malloc_size_to_class(size_t size) {
  return size <= GA_SMALL_SIZE_MAX - 8 ? ga__malloc_size_to_spc8[(size + 7) >> 3] >> 1u
                                       : ga__size_to_class128[(size - GA_SMALL_SIZE_MAX + 127) >> 7];
}

#endif /* GA_SIZECLASSES_H */
"""


def generate(classes):
    magic = [div_magic(c) for c in classes]
    sc8 = size_table(classes, 0, SMALL_SIZE_MAX, SMALL_SIZE_DIV)
    sc128 = size_table(classes, SMALL_SIZE_MAX, MAX_SMALL_SIZE, LARGE_SIZE_DIV)
    malloc8 = list(sc8)
    # 17..24 bytes (index 3): 24-byte class -> next class, which must be 32.
    check(classes[sc8[3]].size == 24 and classes[sc8[3] + 1].size == 32,
          "classes 24 and 32 bytes are not neighbours")
    malloc8[3] = sc8[3] + 1
    for i in range(2, len(malloc8)):  # sizes 9.. land in a class >= 16 bytes
        check(classes[malloc8[i]].size % 16 == 0, f"malloc class for {8 * i} B")

    nclasses = len(classes)
    consts = [
        ("GA_PAGE_SHIFT", PAGE_SHIFT), ("GA_PAGE_SIZE", PAGE_SIZE),
        ("GA_MAX_SMALL_SIZE", MAX_SMALL_SIZE), ("GA_TINY_SIZE", TINY_SIZE),
        ("GA_TINY_SIZE_CLASS", sc8[TINY_SIZE // SMALL_SIZE_DIV]),
        ("GA_NUM_SIZE_CLASSES", nclasses), ("GA_NUM_SPAN_CLASSES", 2 * nclasses),
        ("GA_SMALL_SIZE_DIV", SMALL_SIZE_DIV), ("GA_SMALL_SIZE_MAX", SMALL_SIZE_MAX),
        ("GA_LARGE_SIZE_DIV", LARGE_SIZE_DIV),
        ("GA_MAX_OBJS_PER_SPAN", max(c.nelems for c in classes)),
        ("GA_MAX_CLASS_NPAGES", max(c.npages for c in classes)),
    ]
    h = HEADER + "".join(f"#define {n} {v}\n" for n, v in consts) + "\n"
    dim8 = "GA_SMALL_SIZE_MAX / GA_SMALL_SIZE_DIV + 1"
    dim128 = "(GA_MAX_SMALL_SIZE - GA_SMALL_SIZE_MAX) / GA_LARGE_SIZE_DIV + 1"
    decls = [
        ("uint16_t", "ga__class_to_size", "GA_NUM_SIZE_CLASSES", [c.size for c in classes]),
        ("uint8_t", "ga__class_to_npages", "GA_NUM_SIZE_CLASSES", [c.npages for c in classes]),
        ("uint16_t", "ga__class_to_nelems", "GA_NUM_SIZE_CLASSES", [c.nelems for c in classes]),
        ("uint32_t", "ga__class_to_divmagic", "GA_NUM_SIZE_CLASSES", magic),
        ("uint8_t", "ga__size_to_class8", dim8, sc8),
        ("uint8_t", "ga__size_to_class128", dim128, sc128),
        # malloc's classes as span classes (class << 1, scan): the fast path
        # indexes the mcache with them directly; >> 1 gives the class.
        # Written once, at load, by libgoalloc (see ga__malloc_size_to_class).
        ("uint8_t", "ga__malloc_size_to_spc8", dim8, [v << 1 for v in malloc8]),
    ]
    writable = {"ga__malloc_size_to_spc8"}
    for ctype, name, dim, values in decls:
        bits = int(ctype[4:-2])
        check(all(0 <= v < 1 << bits for v in values), f"{name} overflows {ctype}")
        h += f"extern {'' if name in writable else 'const '}{ctype} {name}[{dim}];\n"
    h += FOOTER

    c = ("/*\n * sizeclasses.c — GENERATED by tools/mksizeclasses.py; do not edit.\n"
         " * Tables described in sizeclasses.h. Analysis of each class:\n *\n"
         + analysis(classes) + "\n *\n"
         " * objects:    per span (bytes/span / bytes/obj). goalloc's collector is\n"
         " *             conservative: no type headers in objects and no pointer\n"
         " *             bitmap at the end of scan spans, so scan and noscan spans\n"
         " *             of a class hold the same number of objects (Go's scan\n"
         " *             spans <= 512 B/obj hold fewer).\n"
         " * tail waste: bytes at the end of the span that fit no object.\n"
         " * max waste:  worst case share of the span lost, every object being one\n"
         " *             byte larger than the previous class, plus the tail.\n"
         " * min align:  guaranteed alignment of every object in the class (spans\n"
         " *             are page aligned; capped at the page size).\n */\n"
         '#include "sizeclasses.h"\n')
    for ctype, name, dim, values in decls:
        c += "\n" + c_array(ctype, name, dim, values, const=name not in writable)
    return h, c


def main():
    repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    ap = argparse.ArgumentParser(description="Generate goalloc's size-class tables.")
    ap.add_argument("--out", default=os.path.join(repo, "src"),
                    help="directory for sizeclasses.h and sizeclasses.c (default: %(default)s)")
    args = ap.parse_args()
    h, c = generate(make_classes())
    for name, text in (("sizeclasses.h", h), ("sizeclasses.c", c)):
        with open(os.path.join(args.out, name), "w", encoding="utf-8", newline="\n") as f:
            f.write(text)


if __name__ == "__main__":
    main()
