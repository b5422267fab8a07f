"""What the server knows: runs, their processes, output, events and metrics, and one sequence.

Every change gets the next number of one server-wide sequence (``seq``) and is announced to the
listeners (the web layer) as ``(event_name, payload)``. A client that remembers the last ``seq``
it applied can ask for exactly what changed after it, so late joiners and reconnecting viewers
see everything once. The Hub owns its lock: writers go through its mutators (which number and
publish each change), readers through ``snapshot``/``atomic``; nobody outside this module takes it.
"""
from __future__ import annotations

import collections
import itertools
import os
import threading
import time
from dataclasses import dataclass, field, fields
from typing import Callable

from mpdash.verdict import one_headline

__all__ = ["Hub", "Run", "Proc", "Limits", "new_run_id", "END_KINDS", "RUN_STATES"]

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
    max_processes: int = 64            # live processes over all runs, helpers included
    run_seconds: float = 120.0         # per lesson run (watch: none unless --timeout)
    run_rss_bytes: int = 2 << 30       # RSS summed over one run's processes
    stop_grace: float = 1.0            # SIGTERM, then SIGKILL after this long
    # Kernel cap per run where cgroups are on (pids.max). It counts threads too, so it sits well
    # above max_processes: it is there to stop a fork bomb dead, the process limit to explain it.
    run_tasks: int = 512
    # Niceness of a watched program's processes (inherited by its children): forty busy workers
    # on two cores at the server's own priority delayed the sampler's wake-ups by up to 0.3-1.7 s;
    # at +10 the observer keeps up. The run still gets every idle cycle. 0: unchanged. Lessons
    # are not niced (engine/launch.py): their speedups must not lose to other programs.
    run_nice: int = 10

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
    state: str = "starting"
    started_at: float = field(default_factory=time.time)
    ended_at: float | None = None
    result: object = None
    findings: list = field(default_factory=list)
    pools: list = field(default_factory=list)             # mpdash/pools.py, at the run's end
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
            "time_limit": self.time_limit,
        }

    def to_json(self, since: int = 0) -> dict:
        """The contract's Run; with ``since``, only what changed after that seq. Callers outside
        the Hub use ``Hub.snapshot``, which takes the lock around this."""
        data = self.summary()
        data["since"] = since
        data["processes"] = [p.to_json() for p in self.processes.values() if p.seq > since]
        data["output"] = [l for l in self.output if l["seq"] > since]
        data["events"] = [e for e in self.events if e["seq"] > since]
        data["metrics"] = [f for f in self.frames if f["seq"] > since]
        data["marks"] = [{"t": t, "label": label, "detail": d} for t, label, d in self.marks]
        data["stacks"] = [s for s in self.stacks if s["seq"] > since]
        data["output_dropped"] = self.output_dropped
        return data


Listener = Callable[[str, dict], None]


class Hub:
    """Runs by id plus the seq counter and the listeners. Engine threads write, handlers read."""

    def __init__(self, limits: Limits | None = None, sample_hz: float = 10.0):
        self._lock = threading.RLock()
        self.limits = limits or Limits()
        self.sample_hz = sample_hz
        self.runs: dict[str, Run] = {}
        self._seq = 0
        self._listeners: list[Listener] = []
        self.viewers = 0           # connected Socket.IO clients; frames are only pushed to some

    # -- sequence and publishing -------------------------------------------------------------
    @property
    def seq(self) -> int:
        return self._seq

    def next_seq(self) -> int:
        with self._lock:
            self._seq += 1
            return self._seq

    def subscribe(self, listener: Listener) -> None:
        self._listeners.append(listener)

    def unsubscribe(self, listener: Listener) -> None:
        if listener in self._listeners:
            self._listeners.remove(listener)

    def publish(self, name: str, payload: dict) -> None:
        """Hand a message (already carrying its ``seq``) to every listener. Called under lock
        so listeners see messages in seq order; listeners must only enqueue."""
        for listener in list(self._listeners):
            try:
                listener(name, payload)
            except Exception:  # a broken listener must not break the engine
                pass

    def announce(self, name: str, payload: dict) -> None:
        """Number and publish a server-wide message that belongs to no run (``history``)."""
        with self._lock:
            self.publish(name, {"seq": self.next_seq(), **payload})

    # -- readers -----------------------------------------------------------------------------
    def snapshot(self, run: Run, since: int = 0) -> dict:
        """The run as the contract's JSON, consistent: no change lands half-way through."""
        with self._lock:
            return run.to_json(since=since)

    def atomic(self, fn: Callable, *args):
        """``fn(*args)`` with no change landing meanwhile: a read of several things at once, or a
        listener's own bookkeeping (listeners run under the same lock). ``fn`` must be quick
        and must not block: every writer waits for it."""
        with self._lock:
            return fn(*args)

    def viewer_joined(self, greet: Callable[[int, list], None]) -> None:
        """Count a viewer and call ``greet(seq, summaries)`` before any later change is published,
        so what it queues (a hello) reaches that viewer ahead of every message newer than ``seq``."""
        with self._lock:
            self.viewers += 1
            greet(self._seq, self.summaries(limit=200))

    def viewer_left(self) -> None:
        with self._lock:
            self.viewers = max(0, self.viewers - 1)

    # -- runs -------------------------------------------------------------------------------
    def add_run(self, run: Run) -> None:
        with self._lock:
            self.runs[run.id] = run
            self._publish_run(run)

    def restore(self, runs: list[Run], seq: int = 0) -> None:
        """Put back runs loaded from storage (announced to nobody); the sequence goes on after
        ``seq``, the highest one they used, so a client never sees a number twice."""
        with self._lock:
            for run in runs:
                self.runs[run.id] = run
            self._seq = max(self._seq, seq)

    def get(self, run_id: str) -> Run | None:
        return self.runs.get(run_id)

    def live_runs(self) -> list[Run]:
        with self._lock:
            return [r for r in self.runs.values() if r.live]

    def live_pids(self) -> dict[str, list[int]]:
        """Run id -> its live pids, for every live run."""
        with self._lock:
            return {r.id: r.live_pids() for r in self.runs.values() if r.live}

    def live_process_count(self) -> int:
        with self._lock:
            return sum(len(r.live_pids()) for r in self.runs.values())

    def summaries(self, limit: int | None = None, before: str | None = None) -> list[dict]:
        with self._lock:
            runs = sorted(self.runs.values(), key=lambda r: (r.started_at, r.id), reverse=True)
            if before is not None:
                ids = [r.id for r in runs]
                runs = runs[ids.index(before) + 1:] if before in ids else []
            if limit is not None:
                runs = runs[:limit]
            return [r.summary() for r in runs]

    def remove(self, run_id: str) -> bool:
        with self._lock:
            run = self.runs.get(run_id)
            if run is None or run.live:
                return False
            del self.runs[run_id]
            self.publish("run_deleted", {"seq": self.next_seq(), "id": run_id})
            return True

    def _publish_run(self, run: Run) -> None:
        run.seq = self.next_seq()
        self.publish("run", {"seq": run.seq, **run.summary()})

    def set_state(self, run: Run, state: str, **fields) -> None:
        with self._lock:
            run.state = state
            for key, value in fields.items():
                setattr(run, key, value)
            self._publish_run(run)

    # The run's own word while it is live: each is a `run` message the moment it arrives.
    def set_result(self, run: Run, value) -> None:
        with self._lock:
            run.result = value
            self._publish_run(run)

    def set_python(self, run: Run, info: dict) -> None:
        with self._lock:
            run.python = info
            self._publish_run(run)

    def set_error(self, run: Run, text: str) -> None:
        with self._lock:
            run.error = str(text)[-MAX_ERROR:]
            self._publish_run(run)

    def add_findings(self, run: Run, found: list[dict]) -> None:
        """Add findings, each replacing an earlier one with its key; one headline at most."""
        found = list(found)
        if not found:
            return
        with self._lock:
            keys = {f["key"] for f in found}
            run.findings = one_headline([f for f in run.findings if f["key"] not in keys] + found)
            self._publish_run(run)

    def add_mark(self, run: Run, t: float, label: str, detail: dict, pid: int | None) -> None:
        """A phase mark: kept with the run and announced as a ``mark`` event."""
        with self._lock:
            run.marks.append((t, label, detail))
            self.add_event(run, {"t": t, "pid": pid, "kind": "mark", "detail": label})

    # -- processes ---------------------------------------------------------------------------
    def upsert_process(self, run: Run, pid: int, **changes) -> Proc:
        """Create or update a Proc; returns it. Does not publish (callers decide the message)."""
        with self._lock:
            proc = run.processes.get(pid)
            if proc is None:
                proc = run.processes[pid] = Proc(pid=pid)
            for key, value in changes.items():
                setattr(proc, key, value)
            proc.seq = run.seq = self.next_seq()
            return proc

    def publish_proc(self, run: Run, proc: Proc, kind: str) -> None:
        with self._lock:
            # A fresh seq at publication: another thread may have published (a frame) since
            # the upsert, and messages must leave in seq order.
            proc.seq = run.seq = self.next_seq()
            self.publish("proc", proc.message(run.id, kind))

    # -- output, events, metrics -------------------------------------------------------------
    def add_output(self, run: Run, pid: int, stream: str, text: str, t: float) -> None:
        with self._lock:
            if len(run.output) == run.output.maxlen:
                run.output_dropped += 1
            line = {"seq": self.next_seq(), "run": run.id, "t": t, "pid": pid,
                    "stream": stream, "text": text}
            run.seq = line["seq"]
            run.output.append(line)
            self.publish("output", line)

    def add_event(self, run: Run, event: dict) -> dict:
        with self._lock:
            event = {"seq": 0, "run": run.id, "t": time.time(), "pid": None,
                     "kind": "", "channel": None, "msg": None, "size": None, "detail": None,
                     **event}
            # Set last: extra fields come from the run's processes (ctx.event(seq=...) is
            # legal there) and must not override the server's numbering or the run's id.
            event["seq"], event["run"] = self.next_seq(), run.id
            run.seq = event["seq"]
            run.events.append(event)
            self.publish("event", event)
            return event

    def add_stacks(self, run: Run, snapshot: dict) -> dict | None:
        """Keep and publish a Snapshot of a live run; None once the run has ended (an ended
        run's record is final: its history and exports are already written)."""
        with self._lock:
            if not run.live:
                return None
            snapshot["seq"] = run.seq = self.next_seq()
            snapshot["run"] = run.id
            run.stacks.append(snapshot)
            self.publish("stacks", snapshot)
            return snapshot

    def add_frame(self, frame: dict, per_run: dict[str, list[int]], push: bool = True) -> None:
        """One sample of every live process. ``frame`` holds aligned columns for all of them;
        each run keeps the columns of its own pids (``per_run``: run id -> column indexes)."""
        with self._lock:
            frame["seq"] = self.next_seq()
            for run_id, idx in per_run.items():
                run = self.runs.get(run_id)
                # A sample that read a run's pids just before it ended can arrive after the end:
                # an ended run keeps the frames it ended with (history and exports are final).
                if run is None or not run.live:
                    continue
                own = {"seq": frame["seq"], "t": frame["t"], "cores": frame["cores"]}
                for key in ("pid", "cpu", "rss", "core", "threads", "running"):
                    column = frame.get(key)
                    if column is not None:
                        own[key] = [column[i] for i in idx]
                own["status"] = "".join(frame["status"][i] for i in idx)
                run.frames.append(own)
            if push:
                self.publish("metrics", frame)
