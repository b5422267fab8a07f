"""The connection from this process to the server: ``send(kind, **fields)``.

Why one stream connection per process: each process (a fork notices its new pid) opens its own
connection, so messages of two processes never interleave, no lock is shared across a fork, and
there is no feeder thread (a ``multiprocessing.Queue`` here hung children in the spike). Unix
datagrams were the other candidate, but Linux queues only ``max_dgram_qlen`` (10 here) of them
before a sender blocks, which stalls any process that prints in bursts.

Messages are built and encoded by ``mpdash.protocol``, the protocol's one definition.
"""
from __future__ import annotations

import os
import socket
import threading

from mpdash import protocol


class _Channel:
    """The connection's state. ``pid`` is the process that opened ``conn``: a fresh fork sees
    another pid and starts anew (its copy of the parent's lock may be held by a thread that does
    not exist in the child), whether or not an after-fork hook ran."""

    __slots__ = ("addr", "conn", "pid", "lock", "sending", "deferred")

    def __init__(self):
        self.addr: str | None = None
        self.conn: socket.socket | None = None
        self.pid = 0
        # Reentrant: a signal handler runs in the thread it interrupts, maybe inside send().
        self.lock = threading.RLock()
        self.sending = False      # inside send()'s write, to spot a signal handler's reentry
        self.deferred: list = []  # what such a handler sent, written once the interrupted send is done

    def start_in(self, pid: int) -> None:
        inherited, self.conn, self.pid = self.conn, None, pid
        self.lock = threading.RLock()
        self.sending = False
        self.deferred = []  # a parent's, deferred when it forked
        if inherited is not None:
            try:
                inherited.close()  # our copy only: the parent's connection stays open
            except OSError:
                pass


_state = _Channel()


def open_to(addr: str) -> None:
    """Send to the server's socket at ``addr`` from now on (connected at the first send)."""
    _state.addr = addr


def enabled() -> bool:
    return _state.addr is not None


def send(kind: str, /, **fields) -> None:
    """Send one message of ``kind``; silently nothing when not in a run or the server is gone.

    ``t`` (default now) and ``pid`` (default this process) may be given among ``fields``.
    """
    if _state.addr is None:
        return
    pid = os.getpid()
    data = protocol.encode(protocol.message(kind, fields.pop("pid", pid), fields.pop("t", None),
                                            **fields))
    if data is None:
        return
    state = _state
    if state.pid != pid:
        state.start_in(pid)
    # Reentrant: a signal handler runs in the thread it interrupts, maybe inside this block;
    # it must neither wait for itself nor write into the middle of a line being written.
    with state.lock:
        if state.sending:
            state.deferred.append(data)   # goes out right after the interrupted send
            return
        state.sending = True
        try:
            if state.conn is None:
                conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                conn.set_inheritable(False)
                conn.connect(state.addr)
                state.conn = conn
            state.conn.sendall(data)
            while state.deferred:
                state.conn.sendall(state.deferred.pop(0))
        except OSError:
            state.conn = None  # the server went away: the run is being torn down
            state.deferred.clear()
        finally:
            state.sending = False
