"""The observed workload of bench_observer: pool-map with spin, serial vs Pool(2).

``python -m benchmarks.speedup ITEMS SPIN`` prints one JSON line {serial, parallel, speedup}.
The same function as the pool-map lesson (``square`` with a CPU-bound spin).
"""
import json
import sys
import time
from functools import partial
from multiprocessing import get_context

from mpdash.lessons.pool_map import square


def main():
    items, spin = int(sys.argv[1]), float(sys.argv[2])
    work = partial(square, spin=spin)
    t0 = time.perf_counter()
    serial = [work(n) for n in range(items)]
    t1 = time.perf_counter()
    with get_context("fork").Pool(2) as pool:
        parallel = pool.map(work, range(items), chunksize=1)
    t2 = time.perf_counter()
    assert serial == parallel
    print(json.dumps({"serial": t1 - t0, "parallel": t2 - t1, "speedup": (t1 - t0) / (t2 - t1)}),
          flush=True)


if __name__ == "__main__":
    main()
