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
Numbers obey physics (issue 14): on Linux the CPU time is the kernel's per-process CPU clock in
nanoseconds (``procfs.process_cpu_ns``), read next to the instant it is divided by, not
``stat``'s 10 ms ticks (a 16 ms birth window read as 137-182 % for one thread); where only ticks
exist (psutil) a window ends only once it is ``TICK_WINDOW`` long. Whatever the clock, a
process is never shown above ``100 x`` its threads (nor above every core) and a core never
above 100 %: a reading past that is a measuring error, bounded and counted in ``clamped``.

Two backends, same columns: ``procfs`` (Linux: one ``pread`` of a kept ``/proc/<pid>/stat`` fd
per process, see ``mpdash.procfs``) and ``psutil`` (portable, ~5x the CPU; see
docs/BENCHMARKS.md). ``running`` is 1 when a thread of the process was in state ``R`` (its
``stat`` letter is its main thread's only), else 0; the psutil backend leaves it ``None`` for a
multi-threaded process whose main thread is not running.
"""
from __future__ import annotations

import collections
import logging
import os
import threading
import time

import psutil

from mpdash import procfs
from mpdash.engine import limits
from mpdash.state import Hub

__all__ = ["Sampler", "STATUS_LETTERS", "ProcfsBackend", "PsutilBackend", "make_backend",
           "cpu_percent", "TICK_WINDOW"]

log = logging.getLogger(__name__)

STATUS_LETTERS = {
    psutil.STATUS_RUNNING: "R", psutil.STATUS_SLEEPING: "S", psutil.STATUS_DISK_SLEEP: "D",
    psutil.STATUS_STOPPED: "T", psutil.STATUS_TRACING_STOP: "t", psutil.STATUS_ZOMBIE: "Z",
    psutil.STATUS_DEAD: "X", psutil.STATUS_IDLE: "I", psutil.STATUS_WAKING: "W",
    psutil.STATUS_PARKED: "P",
}


TICK_WINDOW = 0.25   # s: a CPU time counted in 10 ms ticks is off by up to 2 ticks: 8 % here


class ProcfsBackend:
    """``read(pid)`` -> (status, cpu seconds, threads, started, rss KiB, core, at) or None.
    ``started``, ``at`` (the instant the CPU time was read) and ``now()`` are on one clock
    (seconds since boot). ``cpu_resolution``: seconds of the CPU time's smallest step."""
    name = "procfs"

    def __init__(self):
        self._stat = procfs.StatReader(keep_open=True)
        self._cores = procfs.CoreMeter()
        self._tck = float(procfs.CLK_TCK)
        self.now = procfs.boot_clock()
        self._fine = procfs.has_process_cpu_clock()
        self.cpu_resolution = 1e-9 if self._fine else 1.0 / self._tck

    def read(self, pid: int):
        # The clock before the kept fd: if that fd still answers, the clock read was of the
        # same process (a reaped pid's fd says ESRCH, even once the pid is reused).
        ns = procfs.process_cpu_ns(pid) if self._fine else None
        return self._reading(self._stat.read(pid), ns)

    def read_once(self, pid: int):
        """From another thread (the engine's, at an exit): a fresh open, nothing shared."""
        ns = procfs.process_cpu_ns(pid) if self._fine else None
        return self._reading(procfs.read_stat(pid), ns)

    def _reading(self, s, ns):
        at = self.now()
        if s is None:
            return None
        cpu = ns / 1e9 if ns is not None else s[1] / self._tck
        return s[0], cpu, s[2], s[3] / self._tck, s[4], s[5], at

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
    """The portable path: a cached ``psutil.Process`` per pid, read under ``oneshot()``.
    Its CPU times are ``stat``'s ticks on Linux: treated as coarse everywhere."""
    name = "psutil"
    now = staticmethod(time.time)
    cpu_resolution = 0.01

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
            rss // 1024, core, time.time())


def make_backend(name: str = "auto"):
    if name == "psutil" or (name == "auto" and not procfs.available()):
        return PsutilBackend()
    return ProcfsBackend()


def cpu_percent(used: float, elapsed: float, coarse: bool, most: float) -> tuple[float, bool]:
    """(% of one core over a window, may the window end here?) for ``used`` CPU seconds over
    ``elapsed`` s, never above ``most``. A ``coarse`` (tick-counted) time asks for windows of
    ``TICK_WINDOW`` at least: the caller keeps the window's start until then."""
    if elapsed <= 1e-4:
        return 0.0, False
    share = min(most, max(0.0, used / elapsed * 100.0))
    return share, not coarse or elapsed >= TICK_WINDOW


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
        # pid -> (started, cpu seconds at the window's start, instant of it, threads then),
        # on the backend's clock
        self._prev: dict[int, tuple[float, float, float, int]] = {}
        self._deaths: collections.deque = collections.deque()   # (run_id, pid, reading)
        self._cpus = os.cpu_count() or 1
        self.clamped = 0     # readings above what physics allows (bounded): measuring errors
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
            self._deaths.append((run.id, pid, reading))

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
        rows: list[tuple] = []   # (pid, cpu, rss, core, status, threads, running), one a process
        per_run: dict[str, list[int]] = {}
        rss_by_run: dict[str, int] = {}

        coarse = backend.cpu_resolution > 1e-6
        ncpu = self._cpus

        def row(pid, reading, final=False):
            status, cpu_s, nthreads, started, rss, core, at = reading
            before = prev.get(pid)
            if before is None or before[0] != started:
                before = (started, 0.0, started, nthreads)
            used, elapsed = cpu_s - before[1], at - before[2]
            share = used / elapsed * 100.0 if elapsed > 1e-4 else -1.0
            if 0.0 <= share <= 100.0 and not coarse:
                # The common case, kept cheap (every process, every frame): within one core
                # nothing can bound it, and a fine clock ends every window.
                cpu, ends = share, True
            else:
                # Threads at either end of the window: one that ended meanwhile ran in it.
                most = 100.0 * max(1, min(ncpu, max(nthreads, before[3])))
                cpu, ends = cpu_percent(used, elapsed, coarse and not final, most)
                if share > most + 0.05:
                    self.clamped += 1
            if ends:
                prev[pid] = (started, cpu_s, at, nthreads)
            elif before is not prev.get(pid):
                prev[pid] = before
            # A thread running at the sample? The stat letter alone is the main thread's; the
            # other threads are read only when it is not running (a main waiting in join()).
            if status == "R" or nthreads <= 1 or status == "Z":
                running = 1 if status == "R" else 0
            else:
                found = backend.any_thread_running(pid)
                running = None if found is None else int(found)
            return pid, round(cpu, 1) if cpu > 0 else 0.0, rss, core, status, nthreads, running

        def add(run_id, found):
            if found:
                per_run.setdefault(run_id, []).extend(range(len(rows), len(rows) + len(found)))
                rows.extend(found)
                rss_by_run[run_id] = rss_by_run.get(run_id, 0) + sum(r[2] for r in found)

        dead: set[int] = set()
        while self._deaths:
            run_id, pid, reading = self._deaths.popleft()
            if pid not in dead:
                dead.add(pid)
                add(run_id, [row(pid, reading, final=True)])
        seen = set(dead)
        read, mark = backend.read, seen.add
        for run_id, run_pids in live.items():
            found = []
            for pid in run_pids:
                if pid in seen:
                    continue
                reading = read(pid)
                if reading is None:
                    continue
                mark(pid)
                found.append(row(pid, reading))
            add(run_id, found)
        for pid in dead:
            backend.forget(pid)
            prev.pop(pid, None)
        if len(prev) > len(seen):
            for pid in [p for p in prev if p not in seen]:
                del prev[pid]
                backend.forget(pid)
        for run_id, rss in rss_by_run.items():
            run = hub.get(run_id)
            reason = limits.over_memory(run, rss) if run is not None else None
            if reason:
                self.on_over_memory(run_id, reason)
        pids, cpus, rsss, cores, statuses, threads, running = (list(c) for c in zip(*rows)) \
            if rows else ([], [], [], [], [], [], [])
        frame.update(pid=pids, cpu=cpus, rss=rsss, core=cores, status="".join(statuses),
                     threads=threads, running=running)
        hub.add_frame(frame, per_run, push=watched)
        self._instants.append(time.monotonic())
        self.frames += 1
        return frame
