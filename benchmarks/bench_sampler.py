"""Sampler CPU per process-sample vs the /proc floor, naive psutil and our psutil fallback.

N idle processes (10, 100, 500); every reader samples all of them R rounds; CPU time of this
thread (``time.thread_time``) divided by N*R. Readers alternate round-robin so machine noise
hits them alike; repeated, the median reported.
"""
from __future__ import annotations

import os
import subprocess
import sys
import time

import psutil

from benchmarks._common import median, row
from mpdash.sampler import Sampler
from mpdash.state import Hub, Run


def floor_fresh(pids):
    for pid in pids:
        with open(f"/proc/{pid}/stat", "rb", buffering=0) as f:
            f.read(1024)
        with open(f"/proc/{pid}/statm", "rb", buffering=0) as f:
            f.read(256)


def make_floor_kept(pids):
    fds = [(os.open(f"/proc/{p}/stat", os.O_RDONLY), os.open(f"/proc/{p}/statm", os.O_RDONLY))
           for p in pids]

    def read(_pids):
        for a, b in fds:
            os.pread(a, 1024, 0)
            os.pread(b, 256, 0)
    return read, fds


def naive_psutil(pids):
    for pid in pids:
        p = psutil.Process(pid)
        p.cpu_percent()
        p.memory_info()
        p.status()
        p.num_threads()
        p.cpu_num()


def make_sampler(pids, backend):
    hub = Hub()
    run = Run(id="r", lesson="x", title="x", params={})
    hub.add_run(run)
    sampler = Sampler(hub, live_pids=lambda: {"r": pids}, hz=10, backend=backend)

    def sample(_pids):
        sampler.sample()
        run.frames.clear()
    return sample, sampler


def measure(n: int, rounds: int, reps: int) -> dict:
    children = [subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
                for _ in range(n)]
    try:
        time.sleep(0.5)
        pids = [c.pid for c in children]
        kept, fds = make_floor_kept(pids)
        ours, s1 = make_sampler(pids, "procfs")
        ours_ps, s2 = make_sampler(pids, "psutil")
        readers = {"floor_fresh": floor_fresh, "floor_kept": kept, "naive_psutil": naive_psutil,
                   "sampler_procfs": ours, "sampler_psutil": ours_ps}
        for fn in readers.values():   # warm caches, open fds, first-call baselines
            fn(pids)
        samples = {k: [] for k in readers}
        for _ in range(reps):
            for name, fn in readers.items():
                t0 = time.thread_time()
                for _ in range(rounds):
                    fn(pids)
                samples[name].append((time.thread_time() - t0) / (rounds * n) * 1e6)
        for a, b in fds:
            os.close(a)
            os.close(b)
        s1.backend.close()
        s2.backend.close()
        return {k: median(v) for k, v in samples.items()}
    finally:
        for c in children:
            c.kill()
        for c in children:
            c.wait()


def run(quick: bool = False) -> list[dict]:
    rows = []
    for n in (10, 100, 500):
        rounds = max(4, 2000 // n) if not quick else max(2, 500 // n)
        m = measure(n, rounds, reps=7 if not quick else 3)
        ratio = m["sampler_procfs"] / m["floor_fresh"]
        note = (f"floor fresh {m['floor_fresh']:.1f} µs, kept fds {m['floor_kept']:.1f}; "
                f"ours/procfs {m['sampler_procfs']:.1f}, ours/psutil {m['sampler_psutil']:.1f}; "
                f"naive psutil {m['naive_psutil']:.1f}")
        rows.append(row(f"sampler µs/process-sample, {n} idle procs (ratio to floor)",
                        round(ratio, 2), "× floor", "≤ 2×", ratio <= 2.0, note))
        rows[-1]["detail"] = m
    return rows


if __name__ == "__main__":
    for r in run():
        print(r)
