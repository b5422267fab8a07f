"""What every benchmark shares: a served dashboard in a subprocess, CPU-time readings, medians."""
from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time

import requests

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TCK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """CPU time of one process's threads (not its children): the sum of each thread's
    ``schedstat`` run time, in ns, where available — ``utime+stime`` in ``stat`` counts 10 ms
    ticks, too coarse for 1 % of a core over a few seconds. A thread that ends inside a window
    is lost, so windows are taken while no request is served."""
    try:
        total = 0
        for tid in os.listdir(f"/proc/{pid}/task"):
            try:
                with open(f"/proc/{pid}/task/{tid}/schedstat", "rb") as f:
                    total += int(f.read().split()[0])
            except (OSError, ValueError, IndexError):
                pass
        if total:
            return total / 1e9
    except OSError:
        pass
    with open(f"/proc/{pid}/stat", "rb") as f:
        fields = f.read().rsplit(b")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TCK


def median(values):
    return statistics.median(values) if values else float("nan")


def p95(values):
    values = sorted(values)
    return values[min(len(values) - 1, int(round(0.95 * (len(values) - 1))))] if values else float("nan")


def row(figure, measured, unit, target, met, note=""):
    return {"figure": figure, "measured": measured, "unit": unit, "target": target,
            "met": met, "note": note}


class Server:
    """``with Server(hz=10) as srv``: srv.url, srv.pid; srv.watch(argv) starts a watched run."""

    def __init__(self, hz: float = 10.0, backend: str = "auto", data: str | None = None,
                 nice: int | None = None, stacks: bool = True):
        self.args = [sys.executable, "-m", "benchmarks._server", "--hz", str(hz),
                     "--backend", backend] + (["--data", data] if data else []) \
            + (["--nice", str(nice)] if nice is not None else []) \
            + ([] if stacks else ["--no-stacks"])

    def __enter__(self):
        self.proc = subprocess.Popen(self.args, cwd=ROOT, stdout=subprocess.PIPE, text=True)
        info = json.loads(self.proc.stdout.readline())
        self.pid, self.url = info["pid"], f"http://127.0.0.1:{info['port']}"
        return self

    def watch(self, *argv) -> str:
        r = requests.post(f"{self.url}/bench/watch", json={"argv": list(argv)}, timeout=10)
        r.raise_for_status()
        return r.json()["id"]

    def workload(self, kind: str, n: int, seconds: float) -> str:
        return self.watch(sys.executable, "-m", "benchmarks.workload", kind, str(n), str(seconds))

    def wait_run(self, run_id: str, timeout: float = 120) -> dict:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            run = requests.get(f"{self.url}/api/runs/{run_id}?since=999999999", timeout=10).json()
            if run["state"] not in ("starting", "running"):
                return run
            time.sleep(0.05)
        raise TimeoutError(run_id)

    def cpu(self) -> float:
        return cpu_seconds(self.pid)

    def cpu_all_in(self, run_pids=()) -> float:
        """CPU seconds of the server and its helpers (the watchdog...): the server's children
        that are no run's processes. The kernel's process clocks, in ns: threads that ended
        count too (per-thread ``schedstat`` loses them)."""
        from mpdash import procfs
        total = procfs.process_cpu_ns(self.pid) or 0
        for child in procfs.children_of(self.pid) - set(run_pids):
            total += procfs.process_cpu_ns(child) or 0
        return total / 1e9

    def __exit__(self, *exc):
        self.proc.terminate()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def viewer(url: str, on=None):
    """A connected Socket.IO client (websocket); ``on``: {event: handler}."""
    import socketio
    client = socketio.Client(reconnection=False)
    for name, handler in (on or {}).items():
        client.on(name, handler)
    client.connect(url, transports=["websocket"], wait_timeout=10)
    return client
