"""Synchronized ``Value`` / ``Array`` writes → ``shared_write`` (cell ``index`` and ``value``).

``lock=False`` and ``Raw*`` objects have no wrapper to patch, so they are not traced.
"""
from __future__ import annotations

from mpdash import protocol
from mpdash.inrun import budget, naming
from mpdash.inrun.shortrepr import json_value, short_repr

MAX_VALUES = 32             # cells listed in one shared_write of a slice


class _Originals:
    # The unpatched synchronized(): a wrapper rebuilt in a spawned child must not be named again.
    synchronized = None


def patch(sharedctypes) -> None:
    """Patch the module ``multiprocessing.sharedctypes``."""
    original_synchronized = _Originals.synchronized = sharedctypes.synchronized

    def synchronized(obj, lock=None, ctx=None):
        wrapper = original_synchronized(obj, lock, ctx)
        kind = "Value" if isinstance(wrapper, sharedctypes.Synchronized) else "Array"
        setattr(wrapper, naming.CHANNEL, naming.new_name(kind))
        _created(getattr(wrapper, naming.CHANNEL), kind, obj)
        return wrapper

    # Pickled by reference (SynchronizedBase.__reduce__), so it must be findable by its name.
    synchronized.__module__, synchronized.__qualname__ = sharedctypes.__name__, "synchronized"
    sharedctypes.synchronized = synchronized

    def __reduce__(self):
        sharedctypes.assert_spawning(self)
        return _rebuild_shared, (self._obj, self._lock, getattr(self, naming.CHANNEL, None))

    sharedctypes.SynchronizedBase.__reduce__ = __reduce__

    value = sharedctypes.Synchronized.value

    def set_value(self, new):
        value.fset(self, new)
        channel = getattr(self, naming.CHANNEL, None)
        if channel is not None and not budget.is_paused():
            budget.trace(protocol.SHARED_WRITE, channel, None, None,
                         f"{channel}.value = {new!r}"[:200], index=None, value=json_value(new))

    sharedctypes.Synchronized.value = property(value.fget, set_value)

    original_setitem = sharedctypes.SynchronizedArray.__setitem__

    def __setitem__(self, i, new):
        original_setitem(self, i, new)
        channel = getattr(self, naming.CHANNEL, None)
        if channel is None or budget.is_paused():
            return
        if isinstance(i, slice):
            start, stop, _ = i.indices(len(self))
            cells = list(new)
            budget.trace(protocol.SHARED_WRITE, channel, None, None,
                         f"{channel}[{start}:{stop}] = {short_repr(cells)}"[:200],
                         index=start, value=[json_value(v) for v in cells[:MAX_VALUES]],
                         count=len(cells))
        else:
            if isinstance(i, int) and i < 0:   # the event names the cell, as a slice does
                i += len(self)
            budget.trace(protocol.SHARED_WRITE, channel, None, None,
                         f"{channel}[{i}] = {new!r}"[:200], index=i, value=json_value(new))

    sharedctypes.SynchronizedArray.__setitem__ = __setitem__


def _created(channel: str, kind: str, obj) -> None:
    """``shared_init``: the value(s) a Value/Array was created with, so a page can show each
    cell's before → after. Read from the raw ctypes object (no lock: nobody else has it yet).
    Not a message, so a busy process (over its event budget) just leaves it out."""
    if budget.is_paused() or not budget.individual():
        return
    try:
        if kind == "Value":
            value, extra = json_value(obj.value), {}
        else:
            value, extra = [json_value(v) for v in obj[:MAX_VALUES]], {"count": len(obj)}
    except Exception:   # an exotic ctypes type: its cells still trace their writes
        return
    budget.emit(protocol.SHARED_INIT, channel, None, None,
                f"{channel} = {short_repr(value)}"[:200], value=value, **extra)


def _rebuild_shared(obj, lock, channel):
    import multiprocessing.sharedctypes  # noqa: F401  (patched on import: sets the original)
    wrapper = _Originals.synchronized(obj, lock)
    if channel is not None:
        setattr(wrapper, naming.CHANNEL, channel)
    return wrapper
