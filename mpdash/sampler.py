"""The sampler: one thread that reads every live process of every run, plus per-core CPU.

Every period (``1 / hz``) it builds one columnar frame — ``pid``, ``cpu`` (% of one core, one
decimal), ``rss`` (KiB), ``core`` (last CPU it ran on), ``status`` (one letter as in
``/proc/<pid>/stat``), ``threads`` — and hands it to the Hub, which keeps each run's share and
pushes the frame to viewers (only while there are some).

Fidelity for short lives (the tutorial's pool workers live ~100 ms): a birth pokes the sampler
so the newborn is in a frame within a few ms, and the engine calls ``on_death`` the instant a
pidfd reports an exit, before anyone reaps: the process is a zombie then and its ``stat`` (CPU
times intact) can still be read; that last reading goes into the next frame.

CPU % is computed from CPU-time deltas, with the process's start as the first baseline, so a
newborn's first sample is already meaningful (psutil's ``cpu_percent()`` answers 0.0 first).

Two backends, same columns: ``procfs`` (Linux: one ``pread`` of a kept ``/proc/<pid>/stat`` fd
per process, see ``mpdash.procfs``) and ``psutil`` (portable, ~5x the CPU; see
docs/BENCHMARKS.md). ``running`` is 1 when a thread of the process was in state ``R`` (its
``stat`` letter is its main thread's only), else 0; the psutil backend leaves it ``None`` for a
multi-threaded process whose main thread is not running.
"""
from __future__ import annotations

import collections
import logging
import threading
import time

import psutil

from mpdash import procfs
from mpdash.state import Hub

__all__ = ["Sampler", "STATUS_LETTERS", "ProcfsBackend", "PsutilBackend", "make_backend"]

log = logging.getLogger(__name__)

STATUS_LETTERS = {
    psutil.STATUS_RUNNING: "R", psutil.STATUS_SLEEPING: "S", psutil.STATUS_DISK_SLEEP: "D",
    psutil.STATUS_STOPPED: "T", psutil.STATUS_TRACING_STOP: "t", psutil.STATUS_ZOMBIE: "Z",
    psutil.STATUS_DEAD: "X", psutil.STATUS_IDLE: "I", psutil.STATUS_WAKING: "W",
    psutil.STATUS_PARKED: "P",
}


class ProcfsBackend:
    """``read(pid)`` -> (status, cpu seconds, threads, started, rss KiB, core) or None.
    ``started`` and ``now()`` are on the same clock (seconds since boot)."""
    name = "procfs"

    def __init__(self):
        self._stat = procfs.StatReader(keep_open=True)
        self._cores = procfs.CoreMeter()
        self._tck = float(procfs.CLK_TCK)
        self.now = procfs.boot_seconds

    def read(self, pid: int):
        s = self._stat.read(pid)
        if s is None:
            return None
        return s[0], s[1] / self._tck, s[2], s[3] / self._tck, s[4], s[5]

    def read_once(self, pid: int):
        """From another thread (the engine's, at an exit): a fresh open, nothing shared."""
        s = procfs.read_stat(pid)
        if s is None:
            return None
        return s[0], s[1] / self._tck, s[2], s[3] / self._tck, s[4], s[5]

    def forget(self, pid: int) -> None:
        self._stat.forget(pid)

    def any_thread_running(self, pid: int):
        return procfs.any_thread_running(pid)

    def cores(self) -> list[float]:
        return self._cores.percent()

    def close(self) -> None:
        self._stat.close()
        self._cores.close()


class PsutilBackend:
    """The portable path: a cached ``psutil.Process`` per pid, read under ``oneshot()``."""
    name = "psutil"
    now = staticmethod(time.time)

    def __init__(self):
        self._procs: dict[int, tuple[psutil.Process, float]] = {}
        psutil.cpu_percent(percpu=True)   # the first call only sets the baseline

    def read(self, pid: int):
        entry = self._procs.get(pid)
        try:
            if entry is None:
                proc = psutil.Process(pid)
                entry = self._procs[pid] = (proc, proc.create_time())
            return _psutil_reading(*entry)
        except psutil.Error:
            self._procs.pop(pid, None)
            return None

    def read_once(self, pid: int):
        try:
            proc = psutil.Process(pid)
            return _psutil_reading(proc, proc.create_time())
        except psutil.Error:
            return None

    def forget(self, pid: int) -> None:
        self._procs.pop(pid, None)

    def any_thread_running(self, pid: int):
        return None   # psutil does not give per-thread states; the page then goes by CPU %

    def cores(self) -> list[float]:
        return [round(c, 1) for c in psutil.cpu_percent(percpu=True)]

    def close(self) -> None:
        self._procs.clear()


def _psutil_reading(proc: psutil.Process, created: float):
    with proc.oneshot():
        times = proc.cpu_times()
        rss = proc.memory_info().rss
        core = proc.cpu_num()
        status = proc.status()
        threads = proc.num_threads()
    return (STATUS_LETTERS.get(status, "?"), times.user + times.system, threads, created,
            rss // 1024, core)


def make_backend(name: str = "auto"):
    if name == "psutil" or (name == "auto" and not procfs.available()):
        return PsutilBackend()
    return ProcfsBackend()


def next_tick_after(tick: float, now: float, period: float, poked: bool) -> float:
    """When to sample next. A poke (a birth) samples off the schedule and leaves it alone,
    only not sooner than half a period after: moving the schedule a period per poke starved
    the regular frames after a burst of births (5 births: no frame for 0.3-0.5 s, just when
    a class watches the workers start)."""
    if poked:
        return max(tick, now + period / 2)
    return max(tick + period, now)


class Sampler:
    def __init__(self, hub: Hub, live_pids, on_over_memory=None, hz: float = 10.0,
                 backend: str = "auto"):
        """``live_pids()`` -> {run_id: [pid, ...]}; ``on_over_memory(run_id, reason)``."""
        self.hub = hub
        self.live_pids = live_pids
        self.on_over_memory = on_over_memory or (lambda run_id, reason: None)
        self.hz = hz
        self.backend = make_backend(backend)
        # pid -> (started, cpu seconds at the previous sample, instant of it), backend's clock
        self._prev: dict[int, tuple[float, float, float]] = {}
        self._deaths: collections.deque = collections.deque()   # (run_id, pid, reading, now)
        self._instants: collections.deque = collections.deque(maxlen=max(4, int(hz * 2) + 1))
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._sampling = threading.Lock()   # the sampler thread, or the engine's flush()
        self._thread = threading.Thread(target=self._loop, name="mpdash-sampler", daemon=True)
        self.frames = 0

    def start(self) -> "Sampler":
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        self._thread.join(timeout=2)
        self.backend.close()

    def poke(self, *_ignored) -> None:
        """Sample now (a birth), not at the next tick."""
        self._wake.set()

    def on_death(self, run, pid: int) -> None:
        """Called by the engine the instant an exit is seen, before the process is reaped."""
        reading = self.backend.read_once(pid)
        if reading is not None:
            self._deaths.append((run.id, pid, reading, self.backend.now()))

    def flush(self, run) -> None:
        """Sample now if exit-time readings of ``run`` wait for the next frame. The engine calls
        this just before a run ends, so a run never gains frames after its end (history and
        exports would miss them) and its analysis sees its last processes' final readings."""
        if any(death[0] == run.id for death in list(self._deaths)):
            with self._sampling:
                self.sample()

    def actual_hz(self) -> float:
        """Frames per second over the last ~2 s (births add frames, a loaded machine drops
        some); 0.0 before two frames or when nothing was sampled for a while."""
        instants = list(self._instants)
        if len(instants) < 2 or time.monotonic() - instants[-1] > 2.0:
            return 0.0
        return round((len(instants) - 1) / (instants[-1] - instants[0]), 2)

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
                with self._sampling:
                    self.sample()
            except Exception:
                log.exception("sample")
            next_tick = next_tick_after(next_tick, time.monotonic(), period, poked)

    def sample(self) -> dict | None:
        """Read everything once and hand the frame to the Hub; returns the frame, or None when
        there was nothing to sample and nobody to show the cores to."""
        hub = self.hub
        live = self.live_pids()
        watched = hub.viewers > 0
        if not live and not self._deaths and not watched:
            # Nothing left to read: close the kept /proc fds too, or each idle spell leaks one.
            for pid in self._prev:
                self.backend.forget(pid)
            self._prev.clear()
            return None
        backend, prev = self.backend, self._prev
        t = time.time()
        frame = {"t": round(t, 3), "cores": backend.cores()}
        ncores = len(frame["cores"]) or 1
        pids, cpus, rsss, cores, statuses, threads, running = [], [], [], [], [], [], []
        per_run: dict[str, list[int]] = {}
        rss_by_run: dict[str, int] = {}

        def put(run_id, pid, reading, now):
            status, cpu_s, nthreads, started, rss, core = reading
            before = prev.get(pid)
            if before is None or before[0] != started:
                before = (started, 0.0, started)
            elapsed = now - before[2]
            cpu = (cpu_s - before[1]) / elapsed * 100.0 if elapsed > 1e-3 else 0.0
            # CPU times tick at 1/CLK_TCK (10 ms): over a 3 ms window one tick reads 300 %.
            # No process uses more cores than it has threads, nor more than the machine has.
            cpu = min(cpu, 100.0 * max(1, ncores if status == "Z" else min(nthreads, ncores)))
            prev[pid] = (started, cpu_s, now)
            per_run.setdefault(run_id, []).append(len(pids))
            pids.append(pid)
            cpus.append(round(cpu, 1) if cpu > 0 else 0.0)
            rsss.append(rss)
            cores.append(core)
            statuses.append(status)
            threads.append(nthreads)
            # A thread on a CPU at the sample? The stat letter alone is the main thread's; the
            # other threads are read only when it is not running (a main waiting in join()).
            if status == "R" or nthreads <= 1 or status == "Z":
                running.append(1 if status == "R" else 0)
            else:
                found = backend.any_thread_running(pid)
                running.append(None if found is None else int(found))
            rss_by_run[run_id] = rss_by_run.get(run_id, 0) + rss

        dead: set[int] = set()
        while self._deaths:
            run_id, pid, reading, now = self._deaths.popleft()
            if pid not in dead:
                dead.add(pid)
                put(run_id, pid, reading, now)
        now = backend.now()
        seen = set(dead)
        for run_id, run_pids in live.items():
            for pid in run_pids:
                if pid in seen:
                    continue
                reading = backend.read(pid)
                if reading is None:
                    continue
                seen.add(pid)
                put(run_id, pid, reading, now)
        for pid in dead:
            backend.forget(pid)
            prev.pop(pid, None)
        if len(prev) > len(seen):
            for pid in [p for p in prev if p not in seen]:
                del prev[pid]
                backend.forget(pid)
        limit = hub.limits.run_rss_bytes // 1024
        for run_id, rss in rss_by_run.items():
            if rss > limit:
                self.on_over_memory(run_id, f"memory limit: the run's processes used "
                                            f"{rss / 1024:.0f} MiB of RSS (limit "
                                            f"{limit / 1024:.0f} MiB)")
        frame.update(pid=pids, cpu=cpus, rss=rsss, core=cores, status="".join(statuses),
                     threads=threads, running=running)
        hub.add_frame(frame, per_run, push=watched)
        self._instants.append(time.monotonic())
        self.frames += 1
        return frame
