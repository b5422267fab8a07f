"""Forty pool workers on a small machine (issue 14): 400 short CPU tasks, one at a time each.

Light on purpose (about 1 s of CPU in all): the browser tests watch it on two busy cores.
"""
import sys
import time
from multiprocessing import Pool


def spin(n):
    deadline = time.perf_counter() + 0.002 * (1 + n % 3)   # 2-6 ms: uneven, so the bars differ
    while time.perf_counter() < deadline:
        pass
    return n * n


if __name__ == "__main__":
    workers = int(sys.argv[1]) if len(sys.argv) > 1 else 40
    with Pool(workers) as pool:
        results = pool.map(spin, range(400), chunksize=1)
    print(sum(results))
