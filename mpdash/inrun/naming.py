"""Channel names ("Queue-1") and how they travel with the objects they name.

A queue, pipe, array or pool gets its name where it is created, and the name travels with the
object: as an attribute under fork, appended to the pickled state under spawn and forkserver.
"""
from __future__ import annotations

import itertools
import os
import threading

from mpdash.inrun import role

# Attributes of a traced object that carry its names across pickling.
CHANNEL, POOL = "_mpdash_channel", "_mpdash_pool"
_CARRIED = (CHANNEL, POOL)


class _Counters:
    """One counter per kind of channel. Not reset in a forked child: the child's names carry
    its pid ("Queue-1@4242"), so they cannot clash with its parent's."""

    def __init__(self):
        self.lock = threading.Lock()
        self.by_kind: dict = {}

    def next(self, kind: str) -> int:
        with self.lock:
            counter = self.by_kind.setdefault(kind, itertools.count(1))
            return next(counter)


_counters = _Counters()


def new_name(kind: str) -> str:
    """"Queue-1" in the run's main program; "Queue-1@4242" when a child creates one."""
    suffix = "" if role.is_main() else f"@{os.getpid()}"
    return f"{kind}-{_counters.next(kind)}{suffix}"


class _Names(dict):
    """Our attributes of an object, appended to its pickled state (spawn, forkserver)."""


def carry_names(cls) -> None:
    """Make ``cls``'s pickled state (a tuple) carry our attributes of each instance."""
    original_get, original_set = cls.__getstate__, cls.__setstate__

    def __getstate__(self):
        state = original_get(self)
        names = _Names({a: getattr(self, a) for a in _CARRIED if hasattr(self, a)})
        return state + (names,) if names and isinstance(state, tuple) else state

    def __setstate__(self, state):
        if isinstance(state, tuple) and state and isinstance(state[-1], _Names):
            names, state = state[-1], state[:-1]
            for attr, value in names.items():
                setattr(self, attr, value)
        original_set(self, state)

    cls.__getstate__, cls.__setstate__ = __getstate__, __setstate__
