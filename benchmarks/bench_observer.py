"""Observer effect: the speedup of pool-map (spin) watched at 10 Hz by the dashboard with one
viewer, vs the same workload run bare; alternated, several repetitions, medians compared.

Bare: ``python -m benchmarks.speedup`` as a plain subprocess (no dashboard running). Watched:
the same command as a watched run (probe installed in every process, sampler at 10 Hz, one
Socket.IO viewer receiving every frame). The machine is shared, so each pair runs back to back
and the figure is the difference of the medians.
"""
from __future__ import annotations

import json
import subprocess
import sys
import time

import requests

from benchmarks._common import ROOT, Server, median, row, viewer

ITEMS, SPIN = 8, 0.1


def bare() -> float:
    out = subprocess.run([sys.executable, "-m", "benchmarks.speedup", str(ITEMS), str(SPIN)],
                         cwd=ROOT, capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])["speedup"]


def watched(srv: Server) -> float:
    run_id = srv.watch(sys.executable, "-m", "benchmarks.speedup",
                                         str(ITEMS), str(SPIN))
    srv.wait_run(run_id)
    run = requests.get(f"{srv.url}/api/runs/{run_id}", timeout=10).json()
    line = [o["text"] for o in run["output"] if o["text"].startswith("{")][-1]
    return json.loads(line)["speedup"]


def run(quick: bool = False) -> list[dict]:
    reps = 3 if quick else 9
    b, w = [], []
    with Server(hz=10) as srv:
        client = viewer(srv.url)
        try:
            for i in range(reps):
                # the server idles (no run: nothing sampled) while the bare run goes
                order = (bare, lambda: watched(srv)) if i % 2 == 0 else (lambda: watched(srv), bare)
                for fn in order:
                    (b if fn is bare else w).append(fn())
                time.sleep(0.2)
        finally:
            client.disconnect()
    mb, mw = median(b), median(w)
    diff = (mw - mb) / mb * 100
    best = (max(w) - max(b)) / max(b) * 100
    return [row("observer effect: pool-map speedup watched vs bare", round(diff, 2), "%",
                "≤ 2 % (abs)", abs(diff) <= 2,
                f"bare {mb:.3f}× (runs {', '.join(f'{x:.2f}' for x in b)}), watched {mw:.3f}× "
                f"(runs {', '.join(f'{x:.2f}' for x in w)}); best-of difference {best:+.2f} %")]


if __name__ == "__main__":
    for r in run():
        print(r)
