"""Stacks (issue 11): a Snapshot of a live run with 16 and with 64 Python processes, from the
request to its 200, p95 ≤ 300 ms; and no cost on ``threads-vs-processes`` when none is taken.

Snapshot: a watched run of ``benchmarks.workload idle`` (N-1 sleeping children and the main,
all Python, all probed), then POST /api/runs/<id>/stacks again and again from this process;
every answer is checked to hold N Python processes with a stack each.

Cost: threads-vs-processes' processes phase (its own ``count_down`` in 2 processes, 4 times:
benchmarks/stacks_workload.py) watched on two servers, one whose runs carry the in-run stacks
half and one whose runs do not (``--no-stacks``), in back-to-back pairs; the figure is the
median over pairs of the workers' CPU time with / without, in % (the wall clock is reported
too, but on a shared machine it swings by half between two identical runs).
"""
from __future__ import annotations

import json
import sys
import time

import requests

from benchmarks._common import Server, median, p95, row

TARGET_MS = 300.0
WORKERS, WORK, REPEAT = 2, 5_000_000, 4     # threads-vs-processes' processes phase, 4 times


def snapshot_p95(srv: Server, n: int, samples: int) -> tuple[float, float]:
    run_id = srv.workload("idle", n - 1, 120)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        run = requests.get(f"{srv.url}/api/runs/{run_id}", timeout=10).json()
        if sum(p["ended_at"] is None for p in run["processes"]) >= n:
            break
        time.sleep(0.2)
    else:
        raise RuntimeError(f"only {run['process_count']} of {n} processes came up")
    time.sleep(1.0)   # every child is past its start and sleeping
    took = []
    for _ in range(samples):
        t0 = time.perf_counter()
        answer = requests.post(f"{srv.url}/api/runs/{run_id}/stacks", timeout=30)
        took.append((time.perf_counter() - t0) * 1000)
        answer.raise_for_status()
        procs = answer.json()["processes"]
        dumped = [p for p in procs if p["python"] and p["threads"]]
        if len(dumped) < n:
            raise RuntimeError(f"a Snapshot held {len(dumped)} stacks of {n} processes")
        time.sleep(0.05)
    requests.post(f"{srv.url}/api/runs/{run_id}/stop", timeout=30)
    return p95(took), median(took)


def countdown_cost(srv: Server) -> dict:
    """The lesson's processes phase as a watched run on ``srv``: {wall, cpu, starts}."""
    run_id = srv.watch(sys.executable, "-m", "benchmarks.stacks_workload", str(WORKERS),
                       str(WORK), str(REPEAT))
    srv.wait_run(run_id)
    run = requests.get(f"{srv.url}/api/runs/{run_id}", timeout=10).json()
    line = [o["text"] for o in run["output"] if o["text"].startswith("{")][-1]
    return json.loads(line)


def run(quick: bool = False) -> list[dict]:
    rows = []
    samples = 15 if quick else 40
    with Server() as srv:
        for n in (16, 64):
            worst, typical = snapshot_p95(srv, n, samples)
            rows.append(row(f"stacks: Snapshot of {n} Python processes, request to 200 (p95)",
                            round(worst, 1), "ms", f"≤ {TARGET_MS:g}", worst <= TARGET_MS,
                            f"median {typical:.1f} ms, {samples} requests"))
    reps = 4 if quick else 10
    on, off, cpu_ratios, wall_ratios = [], [], [], []
    with Server() as with_stacks, Server(stacks=False) as without:
        for i in range(reps):
            # back to back, in alternating order: a pair sees the same load on a shared machine
            pair = [(with_stacks, on), (without, off)][:: 1 if i % 2 else -1]
            for srv, into in pair:
                into.append(countdown_cost(srv))
            cpu_ratios.append(on[-1]["cpu"] / off[-1]["cpu"])
            wall_ratios.append(on[-1]["wall"] / off[-1]["wall"])
    diff = 100 * (median(cpu_ratios) - 1)
    rows.append(row("stacks: threads-vs-processes processes phase, CPU time, stacks on vs off",
                    round(diff, 2), "% (median pair)", "≤ 2 %", diff <= 2.0,
                    f"CPU on {median([x['cpu'] for x in on]):.3f} s, off "
                    f"{median([x['cpu'] for x in off]):.3f} s for {on[0]['starts']} process "
                    f"starts; pair ratios {min(cpu_ratios):.3f}-{max(cpu_ratios):.3f}; wall "
                    f"ratio median {median(wall_ratios):.3f} "
                    f"({min(wall_ratios):.2f}-{max(wall_ratios):.2f}); {reps} back-to-back pairs"))
    rows.append(row("stacks (info): in-run cost per process start (open + register)",
                    round(start_cost_us(), 1), "µs", "info", True,
                    "what each Python process of a run pays once; nothing after that"))
    return rows


def start_cost_us(repeat: int = 2000) -> float:
    """The in-run half's whole cost, paid once per process (and per fork): measured here."""
    import os
    import tempfile
    from mpdash.inrun import stacks
    with tempfile.TemporaryDirectory() as folder:
        os.environ["MPDASH_STACKS"] = folder
        try:
            stacks.install()
            t0 = time.perf_counter()
            for _ in range(repeat):
                stacks.after_fork_in_child()   # the same open + register a fresh process does
            took = (time.perf_counter() - t0) / repeat * 1e6
        finally:
            import faulthandler
            faulthandler.unregister(stacks.SIGNAL)
            os.environ.pop("MPDASH_STACKS", None)
    return took


if __name__ == "__main__":
    for r in run(quick="--quick" in sys.argv):
        print(r)
