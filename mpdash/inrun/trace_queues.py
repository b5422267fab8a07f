"""``multiprocessing.Queue`` / ``JoinableQueue`` / ``SimpleQueue`` put and get → ``queue_put`` /
``queue_get``. The queues a library builds for its own work (a Pool's task and result queues,
concurrent.futures' and loky's call queues) carry tasks, which trace_pools shows: untraced."""
from __future__ import annotations

import sys
import threading
import time

from mpdash import protocol
from mpdash.inrun import budget, envelope, naming
from mpdash.inrun.shortrepr import short_repr

_last_size = threading.local()   # bytes of the message the last get in this thread read


def patch(queues) -> None:
    """Patch the module ``multiprocessing.queues``."""
    Queue = queues.Queue
    original_init, original_put, original_get = Queue.__init__, Queue.put, Queue.get

    def __init__(self, *args, **kwargs):
        original_init(self, *args, **kwargs)
        # concurrent.futures and loky build their call queues on Queue: tasks, not messages.
        if not type(self).__module__.startswith(_SUBCLASSERS):
            setattr(self, naming.CHANNEL, naming.new_name("Queue"))

    def _depth(self):
        try:
            return self.qsize()
        except (NotImplementedError, OSError, AttributeError):
            return None

    def traced_put(original_put):
        def put(self, obj, block=True, timeout=None):
            channel = getattr(self, naming.CHANNEL, None)
            if channel is None or budget.is_paused():
                return original_put(self, obj, block, timeout)
            t = time.time()
            if budget.individual():
                msg = budget.new_msg()
                original_put(self, envelope.Tagged(msg, obj), block, timeout)
                budget.emit(protocol.QUEUE_PUT, channel, msg, None, short_repr(obj), t=t,
                            depth=_depth(self))
            else:
                original_put(self, obj, block, timeout)
                budget.count(protocol.QUEUE_PUT, channel, None, _depth(self))
        return put

    def get(self, block=True, timeout=None):
        _last_size.n = None
        msg, obj = envelope.receive(lambda: original_get(self, block, timeout))
        channel = getattr(self, naming.CHANNEL, None)
        if channel is not None and not budget.is_paused():
            size = _last_size.n
            if size is not None and msg is not None:
                size = envelope.own_size(size, msg)
            if msg is not None:
                budget.emit(protocol.QUEUE_GET, channel, msg, size, short_repr(obj),
                            depth=_depth(self))
            else:   # its put was summarised (or untraced): so is the get
                budget.count(protocol.QUEUE_GET, channel, size, _depth(self))
        return obj

    if hasattr(Queue, "_reset"):
        original_reset = Queue._reset

        def _reset(self, *args, **kwargs):
            original_reset(self, *args, **kwargs)
            recv = self._recv_bytes

            def _recv_bytes(*a):
                data = recv(*a)
                _last_size.n = len(data)
                return data
            self._recv_bytes = _recv_bytes
        Queue._reset = _reset

    Queue.__init__, Queue.get = __init__, get
    Queue.put = traced_put(original_put)
    # JoinableQueue.put is its own code, not a call to Queue.put
    queues.JoinableQueue.put = traced_put(queues.JoinableQueue.put)
    naming.carry_names(Queue)
    naming.carry_names(queues.SimpleQueue)
    _patch_simple_queue(queues.SimpleQueue)


# Modules whose queues are a library's own plumbing (see the module docstring): those that
# subclass multiprocessing's queues for it, and those that ask for a plain SimpleQueue.
_SUBCLASSERS = ("concurrent.", "joblib.", "loky.")
_LIBRARIES = ("multiprocessing.",) + _SUBCLASSERS


def _created_by_a_library() -> bool:
    """Was the SimpleQueue being built asked for by a library rather than by the program?
    ``ctx.SimpleQueue()`` (multiprocessing.context) is skipped to find who asked."""
    frame = sys._getframe(2)
    while frame is not None:
        module = frame.f_globals.get("__name__", "")
        if module not in ("multiprocessing.context", __name__):
            return module.startswith(_LIBRARIES)
        frame = frame.f_back
    return False


def _patch_simple_queue(SimpleQueue) -> None:
    original_init, original_put, original_get = (SimpleQueue.__init__, SimpleQueue.put,
                                                 SimpleQueue.get)

    def __init__(self, *args, **kwargs):
        original_init(self, *args, **kwargs)
        if not (type(self).__module__.startswith(_SUBCLASSERS) or _created_by_a_library()):
            setattr(self, naming.CHANNEL, naming.new_name("SimpleQueue"))

    def put(self, obj):
        channel = getattr(self, naming.CHANNEL, None)
        if channel is None or budget.is_paused():
            return original_put(self, obj)
        t = time.time()
        if budget.individual():
            msg = budget.new_msg()
            original_put(self, envelope.Tagged(msg, obj))
            budget.emit(protocol.QUEUE_PUT, channel, msg, None, short_repr(obj), t=t)
        else:
            original_put(self, obj)
            budget.count(protocol.QUEUE_PUT, channel)

    def get(self):
        msg, obj = envelope.receive(lambda: original_get(self))
        channel = getattr(self, naming.CHANNEL, None)
        if channel is not None and not budget.is_paused():
            if msg is not None:
                budget.emit(protocol.QUEUE_GET, channel, msg, None, short_repr(obj))
            else:   # its put was summarised (or untraced): so is the get
                budget.count(protocol.QUEUE_GET, channel)
        return obj

    SimpleQueue.__init__, SimpleQueue.put, SimpleQueue.get = __init__, put, get
