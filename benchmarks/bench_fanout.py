"""Fan-out: 100 viewers at 10 Hz, clients spread over 4 processes; frames lost; server CPU.

The server watches 10 idle processes; every frame carries them, so the run keeps every frame
the server sent (its ``metrics``, with their ``seq``). Each client records the ``seq`` of every
``metrics`` message it gets; a frame is lost for a client when the run holds a frame whose seq
lies inside that client's window (first to last frame it received in the measured window) and
the client never got it. Server CPU: utime+stime over the window.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import requests

from benchmarks._common import ROOT, Server, row, viewer

VIEWERS, PROCS = 100, 4


def client_main(url: str, n: int, seconds: float) -> None:
    seqs: list[list[int]] = [[] for _ in range(n)]
    clients = []
    for i in range(n):
        clients.append(viewer(url, {"metrics": (lambda s: lambda f: s.append(f["seq"]))(seqs[i])}))
    print("ready", flush=True)
    sys.stdin.readline()               # the parent's "go": start of the window
    for s in seqs:
        s.clear()
    time.sleep(seconds)
    window = [list(s) for s in seqs]
    print(json.dumps(window), flush=True)
    os._exit(0)    # the parent kills us: 25 orderly disconnects would take ~1 s each


def measure(window: float) -> tuple[float, int, int, int]:
    with Server(hz=10) as srv:
        run_id = srv.workload("idle", 10, window + 30)
        time.sleep(0.5)
        kids = [subprocess.Popen([sys.executable, "-m", "benchmarks.bench_fanout", "--client",
                                  srv.url, str(VIEWERS // PROCS), str(window)], cwd=ROOT,
                                 stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
                for _ in range(PROCS)]
        try:
            for k in kids:
                assert k.stdout.readline().strip() == "ready"
            time.sleep(0.5)
            for k in kids:
                k.stdin.write("go\n")
                k.stdin.flush()
            c0, t0 = srv.cpu(), time.monotonic()
            time.sleep(window)
            c1, t1 = srv.cpu(), time.monotonic()
            per_client = [s for k in kids for s in json.loads(k.stdout.readline())]
        finally:
            for k in kids:
                k.kill()
                k.wait()
        sent = [f["seq"] for f in requests.get(f"{srv.url}/api/runs/{run_id}", timeout=10)
                .json()["metrics"]]
    lost = 0
    for seqs in per_client:
        if not seqs:
            lost += 1
            continue
        got = set(seqs)
        lost += sum(1 for s in sent if seqs[0] <= s <= seqs[-1] and s not in got)
    received = sum(len(s) for s in per_client)
    return (c1 - c0) / (t1 - t0) * 100, lost, received, len(per_client)


def run(quick: bool = False) -> list[dict]:
    cpu, lost, received, n = measure(4.0 if quick else 8.0)
    return [row(f"fan-out: {VIEWERS} viewers at 10 Hz, server CPU", round(cpu, 1),
                "% of a core", "≤ 25 %", cpu <= 25 and lost == 0,
                f"{n} clients in {PROCS} processes, {received} frames received, {lost} lost")]


if __name__ == "__main__":
    if sys.argv[1:2] == ["--client"]:
        client_main(sys.argv[2], int(sys.argv[3]), float(sys.argv[4]))
    else:
        for r in run():
            print(r)
