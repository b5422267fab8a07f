"""The run's records: what the contract calls Run and Proc (docs/API.md), the limits a run is
held to, and the bounds of what a run keeps. Plain typed data with one ``to_json`` each; only the
Hub (mpdash/state.py) writes them, under its lock.
"""
from __future__ import annotations

import collections
import itertools
import os
import time
from dataclasses import dataclass, field, fields

__all__ = ["Run", "Proc", "Limits", "new_run_id", "END_KINDS", "RUN_STATES", "MAX_OUTPUT_LINES",
           "MAX_EVENTS", "MAX_FRAMES", "MAX_STACKS", "MAX_ERROR"]

RUN_STATES = ("starting", "running", "finished", "failed", "stopped")
END_KINDS = ("exit", "crash", "terminated", "killed")
MAX_OUTPUT_LINES = 20_000      # per run; past that, lines are counted, not kept
MAX_EVENTS = 20_000            # per run
MAX_FRAMES = 36_000            # per run: one hour at 10 Hz
MAX_STACKS = 20                # Snapshots per run (mpdash/stacks.py); the oldest go first
MAX_ERROR = 4000               # characters of a run's error text kept (its last ones)

_ids = itertools.count(1)


def new_run_id() -> str:
    """Short, sortable, unique within this server's life and across restarts."""
    return f"r{int(time.time() * 1000):x}{next(_ids):03x}{os.getpid() % 4096:03x}"


@dataclass
class Limits:
    max_runs: int = 4                  # concurrent runs
    # A lesson's limits; a watched program has its own (engine/limits.py, watch --max-procs...).
    max_processes: int = 64            # live processes over all lesson runs, helpers included
    run_seconds: float = 120.0         # per lesson run
    run_rss_bytes: int = 2 << 30       # RSS summed over one lesson run's processes
    stop_grace: float = 1.0            # SIGTERM, then SIGKILL after this long
    # Kernel cap per run where cgroups are on (pids.max). It counts threads too, so it sits well
    # above max_processes: it is there to stop a fork bomb dead, the process limit to explain it.
    run_tasks: int = 512
    # Niceness of a watched program's processes (inherited by its children): forty busy workers
    # on two cores at the server's own priority delayed the sampler's wake-ups by up to 0.3-1.7 s;
    # at +10 the observer keeps up. The run still gets every idle cycle. 0: unchanged. Lessons
    # are not niced (engine/launch.py): their speedups must not lose to other programs.
    run_nice: int = 10
    # A watched program's pids.max: max(run_tasks, this x its process limit) (engine.limits).
    tasks_per_process: int = 8

    def to_json(self) -> dict:
        return {"max_runs": self.max_runs, "max_processes": self.max_processes,
                "run_seconds": self.run_seconds, "run_rss_bytes": self.run_rss_bytes,
                "run_tasks": self.run_tasks, "run_nice": self.run_nice}


@dataclass(slots=True)
class Proc:
    """One process of a run: the contract's Proc (docs/API.md), written only by the Hub."""
    pid: int
    ppid: int | None = None
    name: str | None = None
    role: str = "worker"
    daemon: bool = False
    orphan: bool = False
    start_method: str | None = None
    started_at: float = field(default_factory=time.time)
    ended_at: float | None = None
    exitcode: int | None = None
    end: str | None = None
    seq: int = 0

    def to_json(self) -> dict:
        return {name: getattr(self, name) for name in _PROC_FIELDS}

    @classmethod
    def from_json(cls, data: dict) -> "Proc":
        return cls(**{k: v for k, v in data.items() if k in _PROC_FIELDS})

    def message(self, run_id: str, kind: str) -> dict:
        """The ``proc`` message of a start, exit or update of this process."""
        data = self.to_json()
        data.update(run=run_id, kind=kind, t=self.started_at if kind == "start" else self.ended_at)
        del data["started_at"], data["ended_at"]
        return data

    # Lessons' analyses read records by key, like the JSON they document: reading stays allowed.
    def __getitem__(self, key: str):
        try:
            return getattr(self, key)
        except AttributeError:
            raise KeyError(key) from None

    def get(self, key: str, default=None):
        return getattr(self, key, default)


_PROC_FIELDS = tuple(f.name for f in fields(Proc))


@dataclass
class Run:
    id: str
    lesson: str
    title: str
    params: dict
    kind: str = "lesson"               # "lesson" or "watch"
    command: list | None = None        # watch: the user's command line
    python: dict | None = None         # the main's interpreter: version, executable, gil_enabled...
    cwd: str | None = None             # watch: the folder the program ran in
    source: dict | None = None         # watch: {path, text, truncated} of the script it ran
    state: str = "starting"
    started_at: float = field(default_factory=time.time)
    ended_at: float | None = None
    result: object = None
    findings: list = field(default_factory=list)
    pools: list = field(default_factory=list)             # mpdash/pools.py: so far while live, final at the end
    error: str | None = None
    seq: int = 0
    processes: dict = field(default_factory=dict)          # pid -> Proc
    output: collections.deque = field(default_factory=lambda: collections.deque(maxlen=MAX_OUTPUT_LINES))
    events: collections.deque = field(default_factory=lambda: collections.deque(maxlen=MAX_EVENTS))
    frames: collections.deque = field(default_factory=lambda: collections.deque(maxlen=MAX_FRAMES))
    marks: list = field(default_factory=list)               # (t, label, detail) from ctx.mark
    stacks: collections.deque = field(default_factory=lambda: collections.deque(maxlen=MAX_STACKS))
    output_dropped: int = 0
    time_limit: float | None = None
    process_limit: int | None = None   # live processes; a lesson's counts every lesson's
    rss_limit: int | None = None       # bytes of RSS summed over the run; None: no limit
    # Engine-side bookkeeping, never sent.
    main_pid: int | None = None
    stop_reason: str | None = None     # set once Stop or a limit decided to end the run
    terminated: set = field(default_factory=set)             # pids someone in the run terminate()d

    @property
    def live(self) -> bool:
        return self.state in ("starting", "running")

    def live_pids(self) -> list[int]:
        return [pid for pid, p in self.processes.items() if p.ended_at is None]

    def summary(self) -> dict:
        return {
            "id": self.id, "lesson": self.lesson, "title": self.title, "params": self.params,
            "kind": self.kind, "command": self.command, "python": self.python,
            "state": self.state,
            "started_at": self.started_at, "ended_at": self.ended_at,
            "duration": (self.ended_at or time.time()) - self.started_at,
            "result": self.result, "findings": self.findings, "pools": self.pools,
            "error": self.error,
            "seq": self.seq, "process_count": len(self.processes),
            "time_limit": self.time_limit, "process_limit": self.process_limit,
            "rss_limit": self.rss_limit, "cwd": self.cwd,
        }

    def to_json(self, since: int = 0) -> dict:
        """The contract's Run; with ``since``, only what changed after that seq. Callers outside
        the Hub use ``Hub.snapshot``, which takes the lock around this."""
        data = self.summary()
        data["source"] = self.source
        data["since"] = since
        data["processes"] = [p.to_json() for p in self.processes.values() if p.seq > since]
        data["output"] = [l for l in self.output if l["seq"] > since]
        data["events"] = [e for e in self.events if e["seq"] > since]
        data["metrics"] = [f for f in self.frames if f["seq"] > since]
        data["marks"] = [{"t": t, "label": label, "detail": d} for t, label, d in self.marks]
        data["stacks"] = [s for s in self.stacks if s["seq"] > since]
        data["output_dropped"] = self.output_dropped
        return data
