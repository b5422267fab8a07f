"""Dashboard CPU while one viewer watches N busy processes at 10 Hz, and the frame size on the
wire (the same runs).

CPU: the server process's CPU time over a window (per-thread schedstat, ns; utime+stime where
absent), its own threads only (the runs are other processes), as % of one core. Busy processes spin on both cores, so the server competes
for CPU like it would in class. Wire: the raw Socket.IO text of each ``metrics`` message as the
client received it (``42["metrics",{...}]`` with the engine.io prefix), divided by the
processes in it.
"""
from __future__ import annotations

import time

import requests

from benchmarks._common import Server, median, row, viewer

WINDOW = 6.0


def measure(n: int, window: float, backend: str = "auto") -> tuple[float, float, int, float]:
    sizes: list[tuple[int, int]] = []
    with Server(hz=10, backend=backend) as srv:
        client = viewer(srv.url)
        original = client._handle_eio_message

        def spy(data):
            if isinstance(data, str) and data.startswith('2["metrics"'):
                # +1: the engine.io message-type digit stripped before this point
                sizes.append((len(data.encode()) + 1, data.count(",") and data))
            return original(data)
        client.eio.on("message", spy)
        client._handle_eio_message = spy
        try:
            srv.workload("busy", n, window + 3.0)
            time.sleep(1.0)                  # every worker born and sampled
            c0, t0 = srv.cpu(), time.monotonic()
            time.sleep(window)
            c1, t1 = srv.cpu(), time.monotonic()
            hz = requests.get(f"{srv.url}/api/system", timeout=10).json()["sample_hz_actual"]
        finally:
            client.disconnect()
    per_proc = []
    import json
    for size, data in sizes[-int(window * 10):]:
        frame = json.loads(data[1:])[1]
        if len(frame["pid"]) >= n:
            per_proc.append(size / len(frame["pid"]))
    return (c1 - c0) / (t1 - t0) * 100, median(per_proc), len(per_proc), hz


def run(quick: bool = False) -> list[dict]:
    rows = []
    for n, target in ((10, 1.0), (64, 4.0)):
        reps = [measure(n, WINDOW if not quick else 2.0) for _ in range(1 if quick else 3)]
        cpu = median([r[0] for r in reps])
        wire = median([r[1] for r in reps])
        # A starved server takes fewer frames (and so spends less): judge the figure scaled
        # to a full 10 frames/s as well.
        scaled = median([r[0] * 10 / r[3] if r[3] else float("inf") for r in reps])
        rows.append(row(f"dashboard CPU, {n} busy procs, 10 Hz, 1 viewer", round(cpu, 2),
                        "% of a core", f"≤ {target:g} %", max(cpu, scaled) <= target,
                        f"scaled to 10 frames/s: {scaled:.2f} %; "
                        + "runs: " + ", ".join(f"{r[0]:.2f}" for r in reps) +
                        "; frames/s really taken: " + ", ".join(f"{r[3]:g}" for r in reps)))
        rows.append(row(f"metrics frame on the wire, {n} procs", round(wire, 1),
                        "bytes/process", "≤ 40", wire <= 40,
                        f"{reps[0][2]} frames of the last window"))
    # The portable path, for comparison (one repetition): same workload, psutil backend.
    cpu, wire, _, hz = measure(64, WINDOW if not quick else 2.0, backend="psutil")
    scaled = cpu * 10 / hz if hz else float("inf")
    rows.append(row("dashboard CPU, 64 busy procs, psutil fallback (info)", round(cpu, 2),
                    "% of a core", "≤ 4 %", max(cpu, scaled) <= 4,
                    f"frames/s really taken: {hz:g}; scaled to 10 frames/s: {scaled:.2f} %"))
    return rows


if __name__ == "__main__":
    for r in run():
        print(r)
