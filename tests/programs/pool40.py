"""A watched Pool(40) of short CPU-bound tasks (issue 14): forty workers on a small machine.

python pool40.py [WORKERS] [TASKS] [SPIN_MS]
"""
import sys
import time
from multiprocessing import Pool


def spin(n, ms):
    deadline = time.perf_counter() + ms / 1000.0
    while time.perf_counter() < deadline:
        pass
    return n * n


if __name__ == "__main__":
    workers = int(sys.argv[1]) if len(sys.argv) > 1 else 40
    tasks = int(sys.argv[2]) if len(sys.argv) > 2 else 1200
    ms = float(sys.argv[3]) if len(sys.argv) > 3 else 2.0
    with Pool(workers) as pool:
        results = pool.starmap(spin, [(n, ms) for n in range(tasks)], chunksize=1)
    print(sum(results))
