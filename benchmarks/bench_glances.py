"""Sampler vs Glances: the same process set, CPU per process refresh, one refresh a second.

Glances (from PyPI, in benchmarks/.venv) refreshes every process it lists (see
_glances_driver.py for how it is forced to refresh every cycle). Our sampler then samples
exactly the pids Glances refreshed, at the same 1 s cadence, in this process. Alternated in
rounds; medians. Glances also discovers processes (it walks /proc); ours does not need to —
the engine learns pids from births — so a /proc listing is timed separately and added to ours
for an apples-to-apples figure.
"""
from __future__ import annotations

import json
import os
import subprocess
import time

from benchmarks._common import ROOT, median, row
from mpdash.sampler import Sampler
from mpdash.state import Hub, Run

VENV_PY = os.path.join(ROOT, "benchmarks", ".venv", "bin", "python")


def glances_cycles(cycles: int) -> list[dict]:
    out = subprocess.run([VENV_PY, os.path.join(ROOT, "benchmarks", "_glances_driver.py"),
                          str(cycles), "1"], capture_output=True, text=True, check=True,
                         cwd="/tmp")
    return json.loads(out.stdout.strip().splitlines()[-1])


def ours_cycles(pids: list[int], cycles: int, backend: str) -> list[float]:
    hub = Hub()
    run = Run(id="r", lesson="x", title="x", params={})
    hub.add_run(run)
    sampler = Sampler(hub, live_pids=lambda: {"r": pids}, hz=1, backend=backend)
    sampler.sample()
    per = []
    for _ in range(cycles):
        time.sleep(1.0)
        t0 = time.thread_time()
        frame = sampler.sample()
        n = len(frame["pid"])
        t1 = time.thread_time()
        [name for name in os.listdir("/proc") if name.isdigit()]
        t2 = time.thread_time()
        per.append(((t1 - t0) / max(n, 1), (t2 - t0) / max(n, 1)))
        run.frames.clear()
    sampler.backend.close()
    return per


def run(quick: bool = False) -> list[dict]:
    if not os.path.exists(VENV_PY):
        return [row("sampler vs Glances, per process refresh", None, "× cheaper", "≥ 3×", False,
                    "benchmarks/.venv missing: python3 -m venv benchmarks/.venv && "
                    "benchmarks/.venv/bin/pip install glances")]
    rounds, cycles = (2, 3) if quick else (3, 5)
    g, ours, ours_ls, ps = [], [], [], []
    n_seen = []
    for _ in range(rounds):
        cyc = glances_cycles(cycles)
        g += [c["cpu"] / c["n"] * 1e6 for c in cyc]
        n_seen.append(cyc[-1]["n"])
        pids = cyc[-1]["pids"]
        per = ours_cycles(pids, cycles, "procfs")
        ours += [a * 1e6 for a, _ in per]
        ours_ls += [b * 1e6 for _, b in per]
        ps += [a * 1e6 for a, _ in ours_cycles(pids, cycles, "psutil")]
    ratio = median(g) / median(ours_ls)
    note = (f"{median(n_seen):.0f} processes; Glances {median(g):.0f} µs/proc, ours "
            f"{median(ours):.1f} µs/proc ({median(ours_ls):.1f} with a /proc listing), our psutil "
            f"fallback {median(ps):.0f} µs/proc (Glances/psutil-fallback {median(g)/median(ps):.1f}×)")
    return [row("sampler vs Glances, per process refresh (1 s cadence)", round(ratio, 1),
                "× cheaper", "≥ 3×", ratio >= 3, note)]


if __name__ == "__main__":
    for r in run(quick=True):
        print(r)
