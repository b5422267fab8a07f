"""The sampler: one thread that reads every live process of every run, plus per-core CPU.

Every period (``1 / hz``) it builds one columnar frame — ``pid``, ``cpu`` (% of one core, one
decimal), ``rss`` (KiB), ``core`` (last CPU it ran on), ``status`` (one letter as in
``/proc/<pid>/stat``), ``threads`` — and hands it to the Hub, which keeps each run's share and
pushes the frame to viewers. A birth pokes the sampler so a process that lives less than a
period (the tutorial's pool workers live ~100 ms) still appears in a frame.

CPU % is computed from CPU-time deltas, with the process's start as the first baseline, so a
newborn's first sample is already meaningful (psutil's ``cpu_percent()`` answers 0.0 first).
"""
from __future__ import annotations

import logging
import threading
import time

import psutil

from mpdash.state import Hub

__all__ = ["Sampler", "STATUS_LETTERS"]

log = logging.getLogger(__name__)

STATUS_LETTERS = {
    psutil.STATUS_RUNNING: "R", psutil.STATUS_SLEEPING: "S", psutil.STATUS_DISK_SLEEP: "D",
    psutil.STATUS_STOPPED: "T", psutil.STATUS_TRACING_STOP: "t", psutil.STATUS_ZOMBIE: "Z",
    psutil.STATUS_DEAD: "X", psutil.STATUS_IDLE: "I", psutil.STATUS_WAKING: "W",
    psutil.STATUS_PARKED: "P",
}


class _Tracked:
    """A cached psutil.Process with the CPU time and instant of its previous sample."""
    __slots__ = ("proc", "create_time", "cpu_time", "at")

    def __init__(self, proc: psutil.Process):
        self.proc = proc
        self.create_time = proc.create_time()
        self.cpu_time = 0.0
        self.at = self.create_time


class Sampler:
    def __init__(self, hub: Hub, live_pids, on_over_memory=None, hz: float = 10.0):
        """``live_pids()`` -> {run_id: [pid, ...]}; ``on_over_memory(run_id, reason)``."""
        self.hub = hub
        self.live_pids = live_pids
        self.on_over_memory = on_over_memory or (lambda run_id, reason: None)
        self.hz = hz
        self._cache: dict[int, _Tracked] = {}
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="mpdash-sampler", daemon=True)
        self.frames = 0
        psutil.cpu_percent(percpu=True)   # the first call only sets the baseline

    def start(self) -> "Sampler":
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        self._thread.join(timeout=2)

    def poke(self, *_ignored) -> None:
        """Sample now (a birth), not at the next tick."""
        self._wake.set()

    def _loop(self) -> None:
        period = 1.0 / self.hz
        next_tick = time.monotonic()
        while not self._stop.is_set():
            poked = self._wake.wait(timeout=max(0.0, next_tick - time.monotonic()))
            self._wake.clear()
            if self._stop.is_set():
                break
            if poked:
                time.sleep(0.005)   # let the rest of a burst of births arrive: one frame for all
            try:
                self.sample()
            except Exception:
                log.exception("sample")
            next_tick = max(next_tick + period, time.monotonic() + (period / 2 if poked else 0))

    def _tracked(self, pid: int) -> _Tracked | None:
        tracked = self._cache.get(pid)
        try:
            if tracked is None or tracked.proc.create_time() != tracked.create_time:
                tracked = self._cache[pid] = _Tracked(psutil.Process(pid))
        except psutil.Error:
            self._cache.pop(pid, None)
            return None
        return tracked

    def sample(self) -> dict:
        """Read everything once and hand the frame to the Hub; returns the frame."""
        now = time.time()
        frame = {"t": round(now, 3), "cores": [round(c, 1) for c in psutil.cpu_percent(percpu=True)],
                 "pid": [], "cpu": [], "rss": [], "core": [], "status": "", "threads": []}
        statuses: list[str] = []
        per_run: dict[str, list[int]] = {}
        seen: set[int] = set()
        for run_id, pids in self.live_pids().items():
            idx = per_run.setdefault(run_id, [])
            rss_sum = 0
            for pid in pids:
                tracked = self._tracked(pid)
                if tracked is None:
                    continue
                try:
                    with tracked.proc.oneshot():
                        times = tracked.proc.cpu_times()
                        rss = tracked.proc.memory_info().rss
                        core = tracked.proc.cpu_num()
                        status = tracked.proc.status()
                        threads = tracked.proc.num_threads()
                except psutil.Error:  # ended between two reads
                    self._cache.pop(pid, None)
                    continue
                cpu_time = times.user + times.system
                elapsed = max(now - tracked.at, 1e-3)
                cpu = max(0.0, (cpu_time - tracked.cpu_time) / elapsed * 100.0)
                tracked.cpu_time, tracked.at = cpu_time, now
                seen.add(pid)
                idx.append(len(frame["pid"]))
                frame["pid"].append(pid)
                frame["cpu"].append(round(cpu, 1))
                frame["rss"].append(rss // 1024)
                frame["core"].append(core)
                statuses.append(STATUS_LETTERS.get(status, "?"))
                frame["threads"].append(threads)
                rss_sum += rss
            limit = self.hub.limits.run_rss_bytes
            if rss_sum > limit:
                self.on_over_memory(run_id, f"memory limit: the run's processes used "
                                            f"{rss_sum / 2**20:.0f} MiB of RSS (limit "
                                            f"{limit / 2**20:.0f} MiB)")
        frame["status"] = "".join(statuses)
        for pid in list(self._cache):
            if pid not in seen:
                del self._cache[pid]
        self.hub.add_frame(frame, per_run)
        self.frames += 1
        return frame
