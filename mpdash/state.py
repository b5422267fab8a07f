"""What the server knows: runs, their processes, output, events and metrics, and one sequence.

Every change gets the next number of one server-wide sequence (``seq``) and is announced to the
listeners (the web layer) as ``(event_name, payload)``. A client that remembers the last ``seq``
it applied can ask for exactly what changed after it, so late joiners and reconnecting viewers
see everything once. All access goes through ``Hub.lock``.
"""
from __future__ import annotations

import collections
import itertools
import os
import threading
import time
from dataclasses import dataclass, field
from typing import Callable

__all__ = ["Hub", "Run", "Limits", "new_run_id", "END_KINDS", "RUN_STATES"]

RUN_STATES = ("starting", "running", "finished", "failed", "stopped")
END_KINDS = ("exit", "crash", "terminated", "killed")
MAX_OUTPUT_LINES = 20_000      # per run; past that, lines are counted, not kept
MAX_EVENTS = 20_000            # per run
MAX_FRAMES = 36_000            # per run: one hour at 10 Hz

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

    def to_json(self) -> dict:
        return {"max_runs": self.max_runs, "max_processes": self.max_processes,
                "run_seconds": self.run_seconds, "run_rss_bytes": self.run_rss_bytes, "run_tasks": self.run_tasks}


@dataclass
class Run:
    id: str
    lesson: str
    title: str
    params: dict
    kind: str = "lesson"               # "lesson" or "watch"
    command: list | None = None        # watch: the user's command line
    state: str = "starting"
    started_at: float = field(default_factory=time.time)
    ended_at: float | None = None
    result: object = None
    findings: list = field(default_factory=list)
    error: str | None = None
    seq: int = 0
    processes: dict = field(default_factory=dict)          # pid -> Proc dict (with its seq)
    output: collections.deque = field(default_factory=lambda: collections.deque(maxlen=MAX_OUTPUT_LINES))
    events: collections.deque = field(default_factory=lambda: collections.deque(maxlen=MAX_EVENTS))
    frames: collections.deque = field(default_factory=lambda: collections.deque(maxlen=MAX_FRAMES))
    marks: list = field(default_factory=list)               # (t, label, detail) from ctx.mark
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
        return [pid for pid, p in self.processes.items() if p["ended_at"] is None]

    def summary(self) -> dict:
        return {
            "id": self.id, "lesson": self.lesson, "title": self.title, "params": self.params,
            "kind": self.kind, "command": self.command, "state": self.state,
            "started_at": self.started_at, "ended_at": self.ended_at,
            "duration": (self.ended_at or time.time()) - self.started_at,
            "result": self.result, "findings": self.findings, "error": self.error,
            "seq": self.seq, "process_count": len(self.processes),
            "time_limit": self.time_limit,
        }

    def to_json(self, since: int = 0) -> dict:
        """The contract's Run; with ``since``, only what changed after that seq."""
        data = self.summary()
        data["since"] = since
        data["processes"] = [p for p in self.processes.values() if p["seq"] > since]
        data["output"] = [l for l in self.output if l["seq"] > since]
        data["events"] = [e for e in self.events if e["seq"] > since]
        data["metrics"] = [f for f in self.frames if f["seq"] > since]
        data["marks"] = [{"t": t, "label": label, "detail": d} for t, label, d in self.marks]
        data["output_dropped"] = self.output_dropped
        return data


Listener = Callable[[str, dict], None]


class Hub:
    """Runs by id plus the seq counter and the listeners. Engine threads write, handlers read."""

    def __init__(self, limits: Limits | None = None, sample_hz: float = 10.0):
        self.lock = threading.RLock()
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
        with self.lock:
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

    # -- runs -------------------------------------------------------------------------------
    def add_run(self, run: Run) -> None:
        with self.lock:
            run.seq = self.next_seq()
            self.runs[run.id] = run
            self.publish("run", {"seq": run.seq, **run.summary()})

    def restore(self, runs: list[Run], seq: int = 0) -> None:
        """Put back runs loaded from storage (announced to nobody); the sequence goes on after
        ``seq``, the highest one they used, so a client never sees a number twice."""
        with self.lock:
            for run in runs:
                self.runs[run.id] = run
            self._seq = max(self._seq, seq)

    def get(self, run_id: str) -> Run | None:
        return self.runs.get(run_id)

    def live_runs(self) -> list[Run]:
        with self.lock:
            return [r for r in self.runs.values() if r.live]

    def live_process_count(self) -> int:
        with self.lock:
            return sum(len(r.live_pids()) for r in self.runs.values())

    def summaries(self, limit: int | None = None, before: str | None = None) -> list[dict]:
        with self.lock:
            runs = sorted(self.runs.values(), key=lambda r: (r.started_at, r.id), reverse=True)
            if before is not None:
                ids = [r.id for r in runs]
                runs = runs[ids.index(before) + 1:] if before in ids else []
            if limit is not None:
                runs = runs[:limit]
            return [r.summary() for r in runs]

    def remove(self, run_id: str) -> bool:
        with self.lock:
            run = self.runs.get(run_id)
            if run is None or run.live:
                return False
            del self.runs[run_id]
            self.publish("run_deleted", {"seq": self.next_seq(), "id": run_id})
            return True

    def set_state(self, run: Run, state: str, **fields) -> None:
        with self.lock:
            run.state = state
            for key, value in fields.items():
                setattr(run, key, value)
            run.seq = self.next_seq()
            self.publish("run", {"seq": run.seq, **run.summary()})

    # -- processes ---------------------------------------------------------------------------
    def upsert_process(self, run: Run, pid: int, **fields) -> dict:
        """Create or update a Proc; returns it. Does not publish (callers decide the message)."""
        with self.lock:
            proc = run.processes.get(pid)
            if proc is None:
                proc = {"pid": pid, "ppid": None, "name": None, "role": "worker", "daemon": False,
                        "orphan": False, "start_method": None, "started_at": time.time(),
                        "ended_at": None, "exitcode": None, "end": None, "seq": 0}
                run.processes[pid] = proc
            proc.update(fields)
            proc["seq"] = run.seq = self.next_seq()
            return proc

    def publish_proc(self, run: Run, proc: dict, kind: str) -> None:
        with self.lock:
            # A fresh seq at publication: another thread may have published (a frame) since
            # the upsert, and messages must leave in seq order.
            proc["seq"] = run.seq = self.next_seq()
            msg = {"seq": proc["seq"], "run": run.id, "kind": kind, "pid": proc["pid"],
                   "ppid": proc["ppid"], "name": proc["name"], "role": proc["role"],
                   "daemon": proc["daemon"], "orphan": proc["orphan"],
                   "start_method": proc["start_method"],
                   "t": proc["started_at"] if kind == "start" else proc["ended_at"],
                   "exitcode": proc["exitcode"], "end": proc["end"]}
            self.publish("proc", msg)

    # -- output, events, metrics -------------------------------------------------------------
    def add_output(self, run: Run, pid: int, stream: str, text: str, t: float) -> None:
        with self.lock:
            if len(run.output) == run.output.maxlen:
                run.output_dropped += 1
            line = {"seq": self.next_seq(), "run": run.id, "t": t, "pid": pid,
                    "stream": stream, "text": text}
            run.seq = line["seq"]
            run.output.append(line)
            self.publish("output", line)

    def add_event(self, run: Run, event: dict) -> dict:
        with self.lock:
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

    def add_frame(self, frame: dict, per_run: dict[str, list[int]], push: bool = True) -> None:
        """One sample of every live process. ``frame`` holds aligned columns for all of them;
        each run keeps the columns of its own pids (``per_run``: run id -> column indexes)."""
        with self.lock:
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
