"""Birth and exit → ``proc`` message at a Socket.IO client, p95.

A watched run starts N processes one after another, each living 100 ms (like the tutorial's
pool workers). This client (a separate process from the server) receives ``proc`` messages:
- birth: receive instant − the ``t`` the run itself stamped when ``start()`` returned;
- exit: receive instant − the instant an *independent* pidfd, opened here at the ``start``
  message, became readable (a poll thread in this process).
"""
from __future__ import annotations

import os
import select
import threading
import time

from benchmarks._common import Server, p95, median, row, viewer


class PidfdClock:
    """Records when each pid's exit becomes visible through our own pidfd."""

    def __init__(self):
        self.exited: dict[int, float] = {}
        self._poll = select.poll()
        self._fds: dict[int, int] = {}
        self._r, self._w = os.pipe()
        self._poll.register(self._r, select.POLLIN)
        self._stop = False
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._thread.start()

    def watch(self, pid: int) -> None:
        try:
            fd = os.pidfd_open(pid)
        except ProcessLookupError:
            return
        self._fds[fd] = pid
        self._poll.register(fd, select.POLLIN)
        os.write(self._w, b"x")

    def _loop(self):
        while not self._stop:
            for fd, _ in self._poll.poll(1000):
                if fd == self._r:
                    os.read(self._r, 4096)
                    continue
                now = time.time()
                self._poll.unregister(fd)
                self.exited[self._fds.pop(fd)] = now
                os.close(fd)

    def close(self):
        self._stop = True
        os.write(self._w, b"x")
        self._thread.join(timeout=2)


def measure(n: int) -> tuple[list[float], list[float]]:
    births, exits, recv_exit = [], {}, {}
    clock = PidfdClock()
    run_ids: set[str] = set()

    def on_proc(msg):
        now = time.time()
        if msg["role"] == "main":
            return
        if msg["kind"] == "start":
            clock.watch(msg["pid"])
            births.append((now - msg["t"]) * 1000)
        elif msg["kind"] == "exit" and msg["pid"] not in recv_exit:
            recv_exit[msg["pid"]] = now

    with Server(hz=10) as srv:
        client = viewer(srv.url, {"proc": on_proc})
        try:
            run_id = srv.workload("churn", n, 0.1)
            srv.wait_run(run_id)
            time.sleep(0.3)
        finally:
            client.disconnect()
    clock.close()
    exit_lat = [(recv_exit[pid] - t) * 1000 for pid, t in clock.exited.items() if pid in recv_exit]
    return births, exit_lat


def run(quick: bool = False) -> list[dict]:
    births, exits = measure(20 if quick else 60)
    return [
        row("birth → proc start at a client, p95", round(p95(births), 2), "ms", "≤ 5 ms",
            p95(births) <= 5, f"n={len(births)}, median {median(births):.2f} ms, max {max(births):.1f}"),
        row("exit → proc exit at a client (vs own pidfd), p95", round(p95(exits), 2), "ms",
            "≤ 5 ms", p95(exits) <= 5,
            f"n={len(exits)}, median {median(exits):.2f} ms, max {max(exits):.1f}"),
    ]


if __name__ == "__main__":
    for r in run():
        print(r)
