"""Allocation-heavy Python workload for the override tests (run.sh python).

Dict and list churn, string building, a JSON round trip and a threaded
section where threads build and drop objects that others made. Prints only
results that do not depend on thread scheduling or hash randomisation, so
the output with goalloc as malloc must equal the output with glibc's.
Run with PYTHONMALLOC=malloc so that every object goes through malloc.
"""
import hashlib
import json
import queue
import threading


def lcg(seed):
    x = seed
    while True:
        x = (x * 6364136223846793005 + 1442695040888963407) % (1 << 64)
        yield x >> 33


def dict_churn(n):
    rnd = lcg(1)
    d = {}
    total = 0
    for i in range(n):
        k = next(rnd) % 5000
        if k in d and next(rnd) % 3 == 0:
            total += len(d.pop(k))
        else:
            d[k] = [str(k)] * (next(rnd) % 20) + ["x" * (k % 300)]
    return total + sum(len(v) for v in d.values())


def list_churn(n):
    rnd = lcg(2)
    lists = [[] for _ in range(100)]
    for _ in range(n):
        lst = lists[next(rnd) % 100]
        if len(lst) > 200:
            del lst[: len(lst) // 2]
        lst.append(bytes(next(rnd) % 2000))
    return sum(len(b) for lst in lists for b in lst)


def json_round_trip(n):
    doc = {
        "items": [
            {"id": i, "name": "item-%d" % i, "tags": ["t%d" % (i % 7)] * (i % 5),
             "value": i * 1.5, "nested": {"a": [i, i + 1, {"b": str(i)}]}}
            for i in range(n)
        ]
    }
    text = json.dumps(doc, sort_keys=True)
    back = json.loads(text)
    assert back == doc
    return hashlib.sha256(text.encode()).hexdigest()


def threaded(nthreads, per_thread):
    # Producers allocate, consumers (other threads) drop: cross-thread frees.
    q = queue.Queue(maxsize=256)
    results = [0] * nthreads

    def producer(t):
        rnd = lcg(100 + t)
        for _ in range(per_thread):
            q.put({"k": next(rnd) % 1000, "payload": [0] * (next(rnd) % 64)})
        q.put(None)

    def consumer(t):
        got = 0
        while True:
            item = q.get()
            if item is None:
                break
            got += item["k"] + len(item["payload"])
            s = "".join(str(x) for x in range(item["k"] % 50))
            got += len(s)
        results[t] = got

    producers = [threading.Thread(target=producer, args=(t,)) for t in range(nthreads)]
    consumers = [threading.Thread(target=consumer, args=(t,)) for t in range(nthreads)]
    for th in producers + consumers:
        th.start()
    for th in producers + consumers:
        th.join()
    return sum(results)


def main():
    print("dict churn", dict_churn(300000))
    print("list churn", list_churn(200000))
    print("json", json_round_trip(20000))
    print("threads", threaded(2, 20000))


if __name__ == "__main__":
    main()
