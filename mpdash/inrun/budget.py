"""How much tracing a process sends: the rate budget, ``traffic`` summaries and pausing.

Past ``MAX_EVENTS_PER_S`` events in one second, a process stops sending one event per message
and counts them instead, sending a ``traffic`` summary per channel every ``SUMMARY_PERIOD`` (and
at exit, before a pause, when a pool worker runs out of work): individual + summarised counts
add up to every message.
"""
from __future__ import annotations

import contextlib
import itertools
import os
import threading
import time

from mpdash import protocol
from mpdash.inrun import channel, hooks

MAX_EVENTS_PER_S = 300      # per process; past this, traffic is summarised
SUMMARY_PERIOD = 0.5        # s between traffic summaries of a busy process

# The counter of a traffic summary that each traced event kind adds to.
COUNTERS = {protocol.QUEUE_PUT: "puts", protocol.QUEUE_GET: "gets", protocol.PIPE_SEND: "sends",
            protocol.PIPE_RECV: "recvs", protocol.SHARED_WRITE: "writes",
            protocol.TASK_START: "tasks_started", protocol.TASK_END: "tasks_ended",
            protocol.TASK_PUT: "tasks_put", protocol.RESULT_GET: "results_got",
            protocol.MANAGER_CALL: "calls", protocol.SHM_CREATE: "creates",
            protocol.SHM_ATTACH: "attaches", protocol.SHM_UNLINK: "unlinks"}


_COUNTED = frozenset(COUNTERS.values())   # what a summary's text lists (not task_s, slowest...)


class Budget:
    """One process's budget and pending counts. ``pid`` is the process it belongs to: a fork
    starts its own (its parent's lock may be held, its counts are the parent's)."""

    def __init__(self):
        self.paused = False
        self.fresh()

    def fresh(self) -> None:
        # Reentrant: a signal handler that puts on a queue runs in the thread it interrupted,
        # maybe while that thread holds this lock.
        self.lock = threading.RLock()
        self.pid = os.getpid()
        self.window_start = self.traffic_since = time.monotonic()
        self.window_count = 0
        self.traffic: dict = {}          # channel -> counters since the last summary
        self.msg_ids = itertools.count(1)

    def mine(self) -> bool:
        if self.pid != os.getpid():
            self.fresh()
            return False
        return True


state = Budget()
hooks.after_fork_in_child(state.fresh)


def is_paused() -> bool:
    return state.paused


@contextlib.contextmanager
def paused():
    """No tracing in this process (and in children started meanwhile) inside the block."""
    flush()
    before, state.paused = state.paused, True
    try:
        yield
    finally:
        state.paused = before


def individual() -> bool:
    """May this process send one more event on its own, or is it summarising?"""
    state.mine()
    now = time.monotonic()
    with state.lock:
        if now - state.window_start >= 1.0:
            state.window_start, state.window_count = now, 0
        state.window_count += 1
        return state.window_count <= MAX_EVENTS_PER_S


def new_msg() -> str:
    """A message id, unique in the run: ``"<pid>.<n>"``."""
    return f"{os.getpid()}.{next(state.msg_ids)}"


def emit(kind: str, chan: str, msg=None, size=None, detail=None, t=None, **extra) -> None:
    """Send one traced event of ``kind`` on channel ``chan`` now."""
    if t is not None:
        extra["t"] = t
    channel.send(protocol.EVENT, kind=kind, channel=chan, msg=msg, size=size, detail=detail,
                 **extra)
    _maybe_flush()


def count(kind: str, chan: str, size=None, depth=None) -> None:
    """Add one message to this process's summary of ``chan`` instead of sending it."""
    with state.lock:
        entry = state.traffic.setdefault(chan, {"bytes": 0})
        name = COUNTERS[kind]
        entry[name] = entry.get(name, 0) + 1
        if size:
            entry["bytes"] += size
        if depth is not None:
            entry["depth"] = depth
    _maybe_flush()


def count_task(chan: str, seconds: float, items: int, text: str) -> None:
    """A finished task counted instead of sent: its seconds and items add up, and the slowest
    one is kept (pool insights need a busy worker's time and slowest task, not just counts)."""
    with state.lock:
        entry = state.traffic.setdefault(chan, {"bytes": 0})
        entry["tasks_ended"] = entry.get("tasks_ended", 0) + 1
        entry["task_s"] = entry.get("task_s", 0.0) + seconds
        entry["items"] = entry.get("items", 0) + items
        if seconds > entry.get("slowest_s", -1.0):
            entry["slowest_s"], entry["slowest"] = seconds, text
    _maybe_flush()


def trace(kind: str, chan: str, msg=None, size=None, detail=None, depth=None, t=None,
          **extra) -> None:
    """One message: an event of its own, or a count in the summary when the process is busy."""
    if msg is None and not individual():
        count(kind, chan, size, depth)
        return
    if depth is not None:
        extra["depth"] = depth
    emit(kind, chan, msg, size, detail, t, **extra)


def pending() -> bool:
    """Are there counts not sent yet?"""
    return bool(state.traffic)


def since_flush() -> float:
    return time.monotonic() - state.traffic_since


def _maybe_flush() -> None:
    if state.traffic and since_flush() >= SUMMARY_PERIOD:
        flush()


def flush() -> None:
    """Send the pending traffic summaries now (at exit, before a pause, every period)."""
    if not state.mine():
        return
    with state.lock:
        todo, state.traffic = state.traffic, {}
        since, state.traffic_since = state.traffic_since, time.monotonic()
    interval = round(time.monotonic() - since, 3)
    for chan, counts in todo.items():
        parts = [f"{v} {k.replace('_', ' ')}" for k, v in counts.items()
                 if k in _COUNTED and v]
        for key in ("task_s", "slowest_s"):
            if key in counts:
                counts[key] = round(counts[key], 6)
        detail = f"{', '.join(parts)} in {interval:.2f} s"
        if counts.get("depth") is not None:
            detail += f" (depth {counts['depth']})"
        size = counts.pop("bytes") or None
        channel.send(protocol.EVENT, kind=protocol.TRAFFIC, channel=chan, msg=None, size=size,
                     detail=detail, interval=interval, **counts)
