"""A run that makes no progress explains itself: after ``stall`` seconds in which no process of
a live run used CPU (each below ``CPU_IDLE`` %), printed anything, was born or ended, or sent an
event, its stacks are taken (reason ``stall``) and an Event ``stall`` says for how long.

``StallDetector`` decides from the run's own numbers (its frames, output, events, processes);
``StallWatch`` is the thread that asks it twice a second per live run and takes the Snapshot.
A thread of its own, not the engine's supervisor nor the sampler: taking stacks waits (up to
``stacks.ANSWER_TIMEOUT``) for the processes to dump, and neither of those may wait for anyone.
It sleeps on a condition while no run is live.
"""
from __future__ import annotations

import logging
import threading
import time

from mpdash.records import newer
from mpdash.stacks import RunEnded

__all__ = ["StallDetector", "StallWatch", "CPU_IDLE", "DEFAULT_STALL"]

log = logging.getLogger(__name__)

DEFAULT_STALL = 3.0     # s; 0 turns detection off
CPU_IDLE = 2.0          # % of one core: below it a process is not working
DUMP_WINDOW = 0.5       # s after a Snapshot: CPU then is the dump's, not the program's
TICK = 0.25             # s between two looks at the live runs


class StallDetector:
    """Progress of one run, from what it recorded; ``check`` says once per stall "now"."""

    def __init__(self, run, stall: float):
        self.stall = stall
        self.last_progress = run.started_at
        self.fired = False
        self._seen = 0          # the run's items up to this seq were already looked at
        self._newest_frame = 0.0

    def observe(self, run) -> None:
        """Look at what the run gained since the last call (inside hub.atomic: no change lands meanwhile)."""
        seen, progress = self._seen, self.last_progress
        for line in newer(run.output, seen):
            progress = max(progress, line["t"])
        for event in newer(run.events, seen):
            if event["kind"] != "stall":
                progress = max(progress, event["t"])
        dumps = [s["t"] for s in run.stacks]
        for frame in newer(run.frames, seen):
            self._newest_frame = max(self._newest_frame, frame["t"])
            if any(cpu >= CPU_IDLE for cpu in frame["cpu"]) and \
                    not any(t <= frame["t"] <= t + DUMP_WINDOW for t in dumps):
                progress = max(progress, frame["t"])
        for proc in run.processes.values():
            if proc["seq"] > seen:
                progress = max(progress, proc["started_at"] or 0, proc["ended_at"] or 0)
        self._seen = run.seq
        if progress > self.last_progress:
            self.last_progress = progress
            self.fired = False

    def check(self, now: float) -> float | None:
        """Seconds without progress when a stall begins now; None otherwise (and while the
        same stall goes on: one Snapshot per stall)."""
        quiet = now - self.last_progress
        # The sampler must have looked recently, or "no CPU" would only mean "not measured".
        measured = now - self._newest_frame <= max(1.0, self.stall / 2)
        if self.fired or quiet < self.stall or not measured:
            return None
        self.fired = True
        return quiet


class StallWatch:
    """Runs the detectors of a Hub's live runs and takes the stall Snapshots (``stacks``)."""

    def __init__(self, hub, stacks, stall: float = DEFAULT_STALL):
        if stall < 0:
            raise ValueError("stall must be 0 (off) or a number of seconds")
        self.hub = hub
        self.stacks = stacks
        self.stall = stall
        self._detectors: dict[str, StallDetector] = {}
        # Lock order: the hub's lock, then _wake (the listener runs under the hub's lock), never
        # the other way round: the loop holds _wake only to wait, and reads the hub outside it.
        self._wake = threading.Condition()
        self._woken = False     # a run began since the loop last looked
        self._closing = False
        self._thread = None
        if stall > 0:
            hub.subscribe(self._listener)
            self._thread = threading.Thread(target=self._loop, name="mpdash-stall", daemon=True)
            self._thread.start()

    def _listener(self, name: str, payload: dict) -> None:
        if name == "run" and payload.get("state") in ("starting", "running"):
            with self._wake:     # under the hub lock: only a notify, never a wait
                self._woken = True
                self._wake.notify()

    def close(self) -> None:
        if self._thread is None:
            return
        self.hub.unsubscribe(self._listener)
        with self._wake:
            self._closing = True
            self._wake.notify()
        self._thread.join(timeout=3)

    def _loop(self) -> None:
        while True:
            idle = not self.hub.live_runs()   # before _wake, never inside it (lock order)
            with self._wake:
                if self._closing:
                    return
                if idle and not self._woken:
                    self._detectors.clear()
                    self._wake.wait(5.0)
                    self._woken = False
                    continue
                self._woken = False
                self._wake.wait(TICK)
                if self._closing:
                    return
            try:
                self._tick(time.time())
            except Exception:   # the watch must go on for the other runs
                log.exception("stall detection")

    def _tick(self, now: float) -> None:
        for run, quiet in self.hub.atomic(self._due, now):
            self._stalled(run, quiet)

    def _due(self, now: float) -> list:
        """The runs whose stall begins now, read with no change landing (hub.atomic): quick."""
        due = []
        live = {run.id: run for run in self.hub.runs.values() if run.live}
        for run_id in set(self._detectors) - set(live):
            del self._detectors[run_id]
        for run_id, run in live.items():
            detector = self._detectors.get(run_id)
            if detector is None:
                detector = self._detectors[run_id] = StallDetector(run, self.stall)
            detector.observe(run)
            quiet = detector.check(now) if run.live_pids() else None
            if quiet is not None:
                due.append((run, quiet))
        return due

    def _stalled(self, run, quiet: float) -> None:
        try:
            snapshot = self.stacks.take(run.id, reason="stall", stalled_for=round(quiet, 1))
        except (RunEnded, KeyError):
            return
        detail = f"no progress for {quiet:.1f} s"
        self.hub.add_event(run, {"kind": "stall", "detail": detail, "t": snapshot["t"],
                                 "msg": snapshot["seq"]})
