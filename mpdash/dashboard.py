"""The engine assembled: one Hub, one Engine (runs), one Sampler. No Flask here.

The web server, the CLI (``mpdash run``, ``mpdash watch``) and the tests each build one
``Dashboard`` and talk to it; ``close()`` ends every run and both threads.
"""
from __future__ import annotations

import multiprocessing
import os
import platform
import sys

import psutil

from mpdash import lessons
from mpdash.pythons import Pythons
from mpdash.runs import Engine
from mpdash.sampler import Sampler
from mpdash.stacks import Stacks
from mpdash.stall import DEFAULT_STALL, StallWatch
from mpdash.state import Hub, Limits

__all__ = ["Dashboard"]


class Dashboard:
    def __init__(self, limits: Limits | None = None, hz: float = 10.0,
                 data_dir: str | None = None, cgroups: bool = True, pythons: tuple = (),
                 stall: float = DEFAULT_STALL):
        """``data_dir``: where run history is kept (SQLite, see store.py); None keeps nothing.
        ``cgroups``: False forces the process-group fallback (tests of that path).
        ``pythons``: interpreters (paths, the server's ``--python``) offered besides those found.
        ``stall``: seconds without progress before a run's stacks are taken by themselves
        (stall.py); 0 turns that off."""
        if not 1 <= hz <= 50:
            raise ValueError("sample rate must be between 1 and 50 Hz")
        self.hub = Hub(limits or Limits(), sample_hz=hz)
        self.store = None
        if data_dir is not None:
            from mpdash.store import Store
            self.store = Store(data_dir)
            self.store.attach(self.hub)   # before any run starts: stored runs come back first
        self.sampler = Sampler(self.hub, live_pids=lambda: self.engine.live_pids(),
                               on_over_memory=lambda run_id, why: self.engine.request_stop(run_id, why),
                               hz=hz)
        self.engine = Engine(self.hub, on_birth=self.sampler.poke, on_death=self.sampler.on_death,
                             on_finish=self.sampler.flush,
                             cgroups=cgroups)
        self.sampler.start()
        self.pythons = Pythons(pythons)
        self.stacks = Stacks(self.hub, self.engine.stacks_folder)
        self.stall = StallWatch(self.hub, self.stacks, stall)
        self._closed = False

    @property
    def limits(self) -> Limits:
        return self.hub.limits

    def system(self) -> dict:
        return {
            "cores": psutil.cpu_count() or os.cpu_count(),
            "cpu_model": _cpu_model(),
            "memory_bytes": psutil.virtual_memory().total,
            "python": sys.version.split()[0],
            "platform": platform.platform(),
            "start_methods": multiprocessing.get_all_start_methods(),
            "pythons": self.pythons.list(),
            "limits": self.limits.to_json(),
            "sample_hz": self.hub.sample_hz,
            "sample_hz_actual": self.sampler.actual_hz(),
            "sampler": self.sampler.backend.name,
            "cgroups": self.engine.cgroups.mode,
            "subreaper": self.engine.subreaper,
            "stall": self.stall.stall,
            "history": self.history(),
        }

    def start_lesson(self, lesson_id, params=None, python_id=None):
        """Start a lesson for a client: ``python_id`` is an id of ``pythons`` (never a path:
        nothing executes a path that came over HTTP). ParamError for an unknown id."""
        python = None
        if python_id is not None:
            python = self.pythons.executable(python_id) if isinstance(python_id, str) else None
            if python is None:
                raise lessons.ParamError(f"unknown python {str(python_id)[:40]!r}: "
                                         f"GET /api/system lists the ids in 'pythons'")
        return self.engine.start_lesson(lesson_id, params, python=python)

    def history(self) -> dict:
        """Whether run history is being written (issue 17): ``{ok, error, pending_runs,
        dropped_runs, folder}``; without a data folder nothing is kept, and nothing fails."""
        from mpdash.store import NO_HISTORY
        return self.store.status() if self.store is not None else dict(NO_HISTORY)

    def lessons(self) -> list[dict]:
        return [lesson.to_json() for lesson in lessons.catalog().values()]

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self.stall.close()
        self.engine.shutdown()
        self.sampler.stop()
        if self.store is not None:
            self.store.close()   # after the engine: the runs it just ended are written too

    def __enter__(self) -> "Dashboard":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"
