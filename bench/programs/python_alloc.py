"""python_alloc.py — the "python" bench workload: a real program's allocations.

Stands for: an interpreter running ordinary code. CPython allocates every
object, dict and string through the C allocator when PYTHONMALLOC=malloc
(the runner sets it: with Python's own small-object allocator, pymalloc,
malloc would only see objects over 512 bytes and pymalloc's arenas come from
mmap, so the allocators under test would hardly be exercised). Started by the
runner with the allocator in LD_PRELOAD (or none: glibc); goalloc's statically
linked variant cannot run it.

Sections, each sized by the scale argument S:
  dicts    a table of records (dicts of str, int, list, tuple) replaced,
           grown and deleted at random, as an in-memory cache or an ORM's
           identity map does;
  strings  text built by += (CPython grows the string in place with
           realloc), by join and by formatting, then split and scanned;
  json     a document of nested records dumped to text and parsed back,
           compared with the original;
  threads  4 producer threads make batches of records and hand them through
           a queue to 2 consumer threads that fold and drop them (objects
           freed by a thread other than the one that made them), with the
           GIL switching between them.
Every section returns a digest of what it read back, never of addresses,
hash() values or timing, and the digests of all sections make the checksum,
so it is the same for every allocator and every run. Prints the bench
report (workload, allocator, ops, checksum, errors, time_ms).

    python3 python_alloc.py S
"""
import json
import os
import queue
import sys
import threading
import time
import zlib

MASK = (1 << 64) - 1


class Rng:
    """A 64-bit LCG (Knuth's MMIX constants): the same sequence on every
    Python version, unlike random's methods other than getrandbits."""

    def __init__(self, seed):
        self.x = (seed * 0x9E3779B97F4A7C15 + 1) & MASK

    def next(self):
        self.x = (self.x * 6364136223846793005 + 1442695040888963407) & MASK
        return self.x >> 33

    def below(self, n):
        return self.next() % n


def crc(text, c=0):
    return zlib.crc32(text.encode(), c)


def dicts(n):
    """Records replaced at random in a table of 4096."""
    rnd = Rng(1)
    table = {}
    c, ops = 0, 0
    for i in range(n):
        k = rnd.below(4096)
        key = "user:%d" % k
        r = rnd.next()
        old = table.get(key)
        if old is not None and r % 5 == 0:
            # read the record back before dropping it
            c = crc("%s/%d/%d/%s" % (old["name"], old["age"], len(old["tags"]),
                                     old["pos"]), c)
            del table[key]
        elif old is not None and r % 5 == 1:
            old["tags"].append("t%d" % (r % 97))
            old["hist"] = old["hist"] + (i,)
        else:
            table[key] = {"name": "n%d-%d" % (k, r % 1000), "age": r % 100,
                          "tags": ["a", "b" * (r % 40)][: 1 + r % 2],
                          "pos": (r % 1000, (r >> 10) % 1000),
                          "hist": (i,)}
        ops += 1
    for key in sorted(table):
        v = table[key]
        c = crc("%s=%s/%d/%s/%d" % (key, v["name"], v["age"], ",".join(v["tags"]),
                                    sum(v["hist"]) & 0xFFFF), c)
    return c, ops


def strings(n):
    """Text built piece by piece, then taken apart."""
    rnd = Rng(2)
    c, ops, errors = 0, 0, 0
    for i in range(n):
        s = ""
        parts = []
        words = 8 + rnd.below(120)
        for w in range(words):
            word = "w%x" % rnd.next()
            s += word + " "            # realloc in place, mostly
            parts.append(word.upper())
        joined = "-".join(parts)
        line = "%d:%s|%s" % (i, s.strip(), joined[: rnd.below(200)])
        fields = line.split("|")[0].split(":", 1)[1].split()
        if len(fields) != words or joined.lower().split("-")[0] != fields[0]:
            errors += 1
        c = crc(line.replace("w", "W", 3), c)
        ops += words
    return c, ops, errors


def jsons(n):
    """A document dumped and parsed back, in chunks of 200 records."""
    rnd = Rng(3)
    c, ops, errors = 0, 0, 0
    for chunk in range(n):
        doc = {"chunk": chunk, "items": []}
        for i in range(200):
            r = rnd.next()
            doc["items"].append({
                "id": chunk * 200 + i, "name": "item-%d" % r,
                "price": (r % 100000) / 100, "tags": ["t%d" % (r % 7)] * (r % 5),
                "attrs": {"a": r % 3 == 0, "b": None, "c": [i, str(i)]}})
        text = json.dumps(doc, sort_keys=True)
        back = json.loads(text)
        if back != doc:
            errors += 1
        c = crc(text, c)
        ops += 200
    return c, ops, errors


def threads(nbatches):
    """Producers make records, consumers (other threads) fold and drop them."""
    nprod, ncons = 4, 2
    q = queue.Queue(maxsize=64)
    folded = [0] * ncons
    count = [0] * ncons

    def producer(t):
        rnd = Rng(100 + t)
        for b in range(nbatches):
            batch = [{"k": rnd.below(1000), "v": "x" * rnd.below(100),
                      "l": list(range(rnd.below(20)))} for _ in range(50)]
            q.put(batch)

    def consumer(t):
        acc, n = 0, 0
        while True:
            batch = q.get()
            if batch is None:
                break
            for rec in batch:
                s = "%d:%s:%d" % (rec["k"], rec["v"], sum(rec["l"]))
                acc = (acc + zlib.crc32(s.encode())) & MASK   # order-free
                n += 1
        folded[t], count[t] = acc, n

    prods = [threading.Thread(target=producer, args=(t,)) for t in range(nprod)]
    cons = [threading.Thread(target=consumer, args=(t,)) for t in range(ncons)]
    for th in prods + cons:
        th.start()
    for th in prods:
        th.join()
    for _ in cons:
        q.put(None)
    for th in cons:
        th.join()
    total = sum(count)
    errors = 0 if total == nprod * nbatches * 50 else 1
    return crc("%d/%d" % (sum(folded) & MASK, total)), total, errors


def preload_loaded():
    """Every library in LD_PRELOAD must be mapped: a preload the loader
    ignored would measure glibc under another allocator's name."""
    want = [p for p in os.environ.get("LD_PRELOAD", "").replace(":", " ").split() if p]
    if not want:
        return True
    with open("/proc/self/maps") as f:
        maps = f.read()
    missing = [p for p in want if os.path.realpath(p) not in maps]
    for p in missing:
        print("FAIL: %s is in LD_PRELOAD but not mapped" % p, file=sys.stderr)
    return not missing


def main():
    scale = float(sys.argv[1]) if len(sys.argv) > 1 else 1.0
    if not preload_loaded():
        return 3
    t0 = time.monotonic()
    c1, o1 = dicts(int(60000 * scale))
    c2, o2, e2 = strings(int(3000 * scale))
    c3, o3, e3 = jsons(int(60 * scale))
    c4, o4, e4 = threads(int(150 * scale))
    errors = e2 + e3 + e4
    checksum = 0
    for part in (c1, c2, c3, c4):
        checksum = (checksum * 0x100000001B3 ^ part) & MASK
    ms = (time.monotonic() - t0) * 1000
    print("workload: python\nallocator: libc-api\nops: %d\nchecksum: %016x\n"
          "errors: %d\ntime_ms: %.3f" % (o1 + o2 + o3 + o4, checksum, errors, ms))
    sys.stdout.flush()
    if errors:
        print("FAIL: python: %d sections did not verify" % errors, file=sys.stderr)
        return 3
    return 0


if __name__ == "__main__":
    sys.exit(main())
