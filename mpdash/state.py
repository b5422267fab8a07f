"""What the server knows: runs, their processes, output, events and metrics, and one sequence.

Every change gets the next number of one server-wide sequence (``seq``) and is announced to the
listeners (the web layer) as ``(event_name, payload)``. A client that remembers the last ``seq``
it applied can ask for exactly what changed after it, so late joiners and reconnecting viewers
see everything once. The Hub owns its lock: writers go through its mutators (which number and
publish each change), readers through ``snapshot``/``atomic``; nobody outside this module takes it.
"""
from __future__ import annotations

import threading
import time
from typing import Callable

from mpdash.records import (END_KINDS, MAX_ERROR, MAX_EVENTS, MAX_FRAMES, MAX_OUTPUT_LINES,  # noqa: F401
                            MAX_STACKS, RUN_STATES, Limits, Proc, Run, new_run_id)
from mpdash.verdict import one_headline

# Run, Proc and Limits live in mpdash/records.py; they are named here too, where every engine
# module and test has always found them next to the Hub that writes them.
__all__ = ["Hub", "Run", "Proc", "Limits", "new_run_id", "END_KINDS", "RUN_STATES"]


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

    def set_pools(self, run: Run, pools: list) -> bool:
        """A live run's pools so far (engine/livepools.py); False once it has ended: its final
        pools, computed from all its events, came with its end and stay."""
        with self._lock:
            if not run.live:
                return False
            run.pools = pools
            self._publish_run(run)
            return True

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
