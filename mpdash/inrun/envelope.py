"""The envelope that pairs a get with its put: (message id, the program's object).

The sender wraps the object in a ``Tagged`` envelope carrying a message id; every traced
receiver unwraps it (even while paused), so the program always gets its own object back. It
unpickles as the program's object itself (the id is left aside for the receiver), so a program
that reads a traced message some other way (``recv_bytes()`` + ``pickle.loads``) still gets
exactly what was sent.
"""
from __future__ import annotations

import pickle
import threading


class Tagged:
    __slots__ = ("msg", "obj")

    def __init__(self, msg, obj):
        self.msg, self.obj = msg, obj

    def __reduce__(self):
        return _arrive, (self.msg, self.obj)


_arrived = threading.local()


def _arrive(msg, obj):
    # Unpickled after everything inside obj, so the outermost envelope's id is the one kept.
    _arrived.msg = msg
    return obj


def receive(load):
    """(message id or None, object) of one message read by ``load()``."""
    _arrived.msg = None
    obj = load()
    msg, _arrived.msg = getattr(_arrived, "msg", None), None
    return msg, obj


def _measure() -> int:
    # Measured on an object long enough to be framed (as real messages are; None is not), and
    # per character of the id, so a size is the program's own pickled bytes.
    sample = "mpdash"
    return (len(pickle.dumps(Tagged("", sample), protocol=pickle.DEFAULT_PROTOCOL))
            - len(pickle.dumps(sample, protocol=pickle.DEFAULT_PROTOCOL)))


OVERHEAD = _measure()   # bytes an envelope adds, besides its id's characters


def own_size(size: int, msg: str) -> int:
    """The program's own pickled bytes of an enveloped message of ``size`` bytes."""
    return size - OVERHEAD - len(msg)
