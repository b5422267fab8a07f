"""``python -m benchmarks.stacks_workload WORKERS WORK REPEAT``: threads-vs-processes' processes
phase (the lesson's own ``count_down`` in WORKERS processes), REPEAT times, and what it cost.

Prints one JSON line ``{wall, cpu, starts}``: seconds of wall clock, CPU seconds of the worker
processes (user + system, from ``os.times()`` of the reaped children), and processes started.
CPU time is what a per-process cost would add to; unlike the wall clock it hardly moves when
the machine is shared (bench_stacks compares it with and without the in-run stacks half).
"""
import json
import os
import sys
import time
from multiprocessing import Process

from mpdash.lessons.threads_vs_processes import count_down


def main():
    workers, work, repeat = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
    before = os.times()
    started = time.perf_counter()
    for _ in range(repeat):
        procs = [Process(target=count_down, args=(work,)) for _ in range(workers)]
        for p in procs:
            p.start()
        for p in procs:
            p.join()
    wall = time.perf_counter() - started
    after = os.times()
    cpu = (after.children_user - before.children_user) + (after.children_system - before.children_system)
    print(json.dumps({"wall": wall, "cpu": cpu, "starts": workers * repeat}), flush=True)


if __name__ == "__main__":
    main()
