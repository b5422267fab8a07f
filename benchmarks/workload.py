"""Workloads the benchmarks watch: ``python -m benchmarks.workload KIND N SECONDS``.

- ``busy N S``: N processes spinning for S seconds.
- ``idle N S``: N processes sleeping for S seconds.
- ``churn N S``: N processes one after another, each living S seconds, 30 ms apart.
- ``burst N S``: five times, a ``Pool(N)`` whose workers all start, idle S seconds, and are
  terminated at once (leaving ``with Pool()`` calls ``terminate()``: N SIGTERMs together).
Prints nothing; fork start method so births are cheap and the figure is the dashboard's.
"""
import multiprocessing as mp
import sys
import time


def spin(seconds, go=None):
    if go is not None:
        go.wait()   # start spinning together, once every process exists
    deadline = time.perf_counter() + seconds
    while time.perf_counter() < deadline:
        pass


def main():
    kind, n, seconds = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
    ctx = mp.get_context("fork")
    if kind == "churn":
        for _ in range(n):
            p = ctx.Process(target=time.sleep, args=(seconds,))
            p.start()
            time.sleep(0.03)
            p.join()
            time.sleep(0.03)
        return
    if kind == "burst":
        for _ in range(5):
            with ctx.Pool(n) as pool:
                pool.map(abs, range(n), chunksize=1)
                time.sleep(seconds)
            time.sleep(0.3)
        return
    go = ctx.Event()
    procs = [ctx.Process(target=spin, args=(seconds, go)) if kind == "busy"
             else ctx.Process(target=time.sleep, args=(seconds,)) for _ in range(n)]
    for p in procs:
        p.start()
    go.set()
    for p in procs:
        p.join()


if __name__ == "__main__":
    main()
