"""Tracing of multiprocessing's message passing, in every process of a run, without touching
the program: ``probe.install()`` calls ``install()`` before any lesson or user code runs.

What is traced (event kinds, see docs/API.md "Events emitted by tracing"):
- ``multiprocessing.Queue`` put/get → ``queue_put`` / ``queue_get``;
- user-level ``multiprocessing.Pipe()`` ends, send/recv → ``pipe_send`` / ``pipe_recv``;
- synchronized ``Value`` / ``Array`` writes → ``shared_write`` (cell ``index`` and ``value``);
- ``Pool`` and ``ProcessPoolExecutor`` tasks, in the worker that runs them → ``task_start`` /
  ``task_end``;
- past ``MAX_EVENTS_PER_S`` events in one second, a process stops sending one event per
  message and sends a ``traffic`` summary per channel every ``SUMMARY_PERIOD`` instead.

How channels stay meaningful across processes: a queue, pipe, array or pool gets its name
("Queue-1") where it is created, and the name travels with the object — as an attribute under
fork, appended to the pickled state under spawn and forkserver.

How a get is paired with its put: the sender wraps the object in a small ``_Tagged`` envelope
carrying a message id; every traced receiver unwraps it (even while paused), so the program
always gets its own object back. Only ``Pipe()`` connections made by the program are traced:
the internal connections of ``Queue``, ``SimpleQueue``, ``Pool`` and managers are made with
``connection.Pipe`` directly, never through ``multiprocessing.Pipe``, so they stay untouched.

Modules are patched when they are first imported (a meta-path hook), so a process that never
uses a Pool does not pay for importing one.
"""
from __future__ import annotations

import atexit
import contextlib
import functools
import importlib.abc
import itertools
import os
import sys
import threading
import time
import weakref

from mpdash import probe

__all__ = ["install", "paused", "is_paused", "flush", "MAX_EVENTS_PER_S", "SUMMARY_PERIOD"]

MAX_EVENTS_PER_S = 300      # per process; past this, traffic is summarised
SUMMARY_PERIOD = 0.5        # s between traffic summaries of a busy process
IDLE_GAP = 0.01             # s: a pool worker out of tasks sends its counts, at most this often
MAX_VALUES = 32             # cells listed in one shared_write of a slice

_installed = False
_paused = False
# Reentrant: a signal handler that puts on a queue runs in the thread it interrupted, maybe
# while that thread holds this lock.
_lock = threading.RLock()
_pid = 0
_window_start = 0.0
_window_count = 0
_msg_ids = itertools.count(1)
_traffic: dict = {}          # channel -> counters since the last summary
_traffic_since = 0.0
_names: dict = {}            # kind -> itertools.count, for channel names
_tag_overhead = 0


# ---------------------------------------------------------------------------- emitting

def is_paused() -> bool:
    return _paused


def _fresh_after_fork() -> None:
    """A forked child starts its own budget and summary (its parent's lock may be held)."""
    global _lock, _pid, _window_start, _window_count, _traffic, _traffic_since, _msg_ids
    _lock = threading.RLock()
    _pid = os.getpid()
    _window_start = time.monotonic()
    _window_count = 0
    _traffic = {}
    _traffic_since = time.monotonic()
    _msg_ids = itertools.count(1)


def _individual() -> bool:
    """May this process send one more event on its own, or is it summarising?"""
    global _window_start, _window_count
    if _pid != os.getpid():
        _fresh_after_fork()
    now = time.monotonic()
    with _lock:
        if now - _window_start >= 1.0:
            _window_start, _window_count = now, 0
        _window_count += 1
        return _window_count <= MAX_EVENTS_PER_S


def _new_msg() -> str:
    return f"{os.getpid()}.{next(_msg_ids)}"


def _send(kind: str, channel: str, msg=None, size=None, detail=None, t=None, **extra) -> None:
    event = {"k": "event", "kind": kind, "channel": channel, "msg": msg, "size": size,
             "detail": detail}
    if t is not None:
        event["t"] = t
    event.update(extra)
    probe.send(event)
    _maybe_flush()


_COUNTERS = {"queue_put": "puts", "queue_get": "gets", "pipe_send": "sends",
             "pipe_recv": "recvs", "shared_write": "writes", "task_start": "tasks_started",
             "task_end": "tasks_ended", "task_put": "tasks_put", "result_get": "results_got"}


def _count(kind: str, channel: str, size=None, depth=None) -> None:
    """Add one message to this process's summary of ``channel`` instead of sending it."""
    with _lock:
        entry = _traffic.setdefault(channel, {"bytes": 0})
        name = _COUNTERS[kind]
        entry[name] = entry.get(name, 0) + 1
        if size:
            entry["bytes"] += size
        if depth is not None:
            entry["depth"] = depth
    _maybe_flush()


def _maybe_flush() -> None:
    if _traffic and time.monotonic() - _traffic_since >= SUMMARY_PERIOD:
        flush()


def flush() -> None:
    """Send the pending traffic summaries now (at exit, before a pause, every period)."""
    global _traffic, _traffic_since
    if _pid != os.getpid():
        _fresh_after_fork()
        return
    with _lock:
        pending, _traffic = _traffic, {}
        since, _traffic_since = _traffic_since, time.monotonic()
    interval = round(time.monotonic() - since, 3)
    for channel, counts in pending.items():
        parts = [f"{v} {k.replace('_', ' ')}" for k, v in counts.items()
                 if k not in ("bytes", "depth") and v]
        detail = f"{', '.join(parts)} in {interval:.2f} s"
        if counts.get("depth") is not None:
            detail += f" (depth {counts['depth']})"
        size = counts.pop("bytes") or None
        probe.send({"k": "event", "kind": "traffic", "channel": channel, "msg": None,
                    "size": size, "detail": detail, "interval": interval, **counts})


def _trace(kind: str, channel: str, msg=None, size=None, detail=None, depth=None, t=None,
           **extra) -> None:
    """One message: an event of its own, or a count in the summary when the process is busy."""
    if msg is None and not _individual():
        _count(kind, channel, size, depth)
        return
    if depth is not None:
        extra["depth"] = depth
    _send(kind, channel, msg, size, detail, t, **extra)


@contextlib.contextmanager
def paused():
    """No tracing in this process (and in children started meanwhile) inside the block."""
    global _paused
    flush()
    before, _paused = _paused, True
    try:
        yield
    finally:
        _paused = before


def _json_value(value):
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float):
        return value if value == value and value not in (float("inf"), float("-inf")) else repr(value)
    if isinstance(value, bytes):
        return probe.short_repr(value)
    return probe.short_repr(value)


# ---------------------------------------------------------------------------- naming

def _name(kind: str) -> str:
    """"Queue-1" in the run's main program; "Queue-1@4242" when a child creates one."""
    counter = _names.setdefault(kind, itertools.count(1))
    suffix = "" if probe.role() == "main" else f"@{os.getpid()}"
    return f"{kind}-{next(counter)}{suffix}"


class _Names(dict):
    """Our attributes of a queue, appended to its pickled state (spawn, forkserver)."""


_CARRIED = ("_mpdash_channel", "_mpdash_pool")


def _carry_state(cls) -> None:
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


class _Tagged:
    """The envelope that pairs a get with its put: (message id, the program's object).

    It unpickles as the program's object itself (the id is left aside for the receiver), so a
    program that reads a traced message some other way (``recv_bytes()`` + ``pickle.loads``)
    still gets exactly what was sent."""
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


def _receive(load):
    """(message id or None, object) of one message read by ``load()``."""
    _arrived.msg = None
    obj = load()
    msg, _arrived.msg = getattr(_arrived, "msg", None), None
    return msg, obj


# ---------------------------------------------------------------------------- queues

_last_size = threading.local()


def _patch_queues(queues) -> None:
    Queue = queues.Queue
    original_init, original_put, original_get = Queue.__init__, Queue.put, Queue.get

    def __init__(self, *args, **kwargs):
        original_init(self, *args, **kwargs)
        # concurrent.futures builds its call queue on Queue: its traffic is tasks, not messages.
        if not type(self).__module__.startswith("concurrent."):
            self._mpdash_channel = _name("Queue")

    def _depth(self):
        try:
            return self.qsize()
        except (NotImplementedError, OSError, AttributeError):
            return None

    def traced_put(original_put):
        def put(self, obj, block=True, timeout=None):
            channel = getattr(self, "_mpdash_channel", None)
            if channel is None or _paused:
                return original_put(self, obj, block, timeout)
            t = time.time()
            if _individual():
                msg = _new_msg()
                original_put(self, _Tagged(msg, obj), block, timeout)
                _send("queue_put", channel, msg, None, probe.short_repr(obj), t=t,
                      depth=_depth(self))
            else:
                original_put(self, obj, block, timeout)
                _count("queue_put", channel, None, _depth(self))
        return put

    def get(self, block=True, timeout=None):
        _last_size.n = None
        msg, obj = _receive(lambda: original_get(self, block, timeout))
        channel = getattr(self, "_mpdash_channel", None)
        if channel is not None and not _paused:
            size = _last_size.n
            if size is not None and msg is not None:
                size -= _tag_overhead + len(msg)
            if msg is not None:
                _send("queue_get", channel, msg, size, probe.short_repr(obj), depth=_depth(self))
            else:   # its put was summarised (or untraced): so is the get
                _count("queue_get", channel, size, _depth(self))
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
    _carry_state(Queue)
    _carry_state(queues.SimpleQueue)


# ---------------------------------------------------------------------------- pipes

def _patch_connections(connection, reduction) -> None:
    Base = connection._ConnectionBase
    dumps, loads = reduction.ForkingPickler.dumps, reduction.ForkingPickler.loads

    def send(self, obj):
        channel = getattr(self, "_mpdash_channel", None)
        if channel is None or _paused:
            return original_send(self, obj)
        self._check_closed()
        self._check_writable()
        t = time.time()
        if _individual():
            msg = _new_msg()
            data = dumps(_Tagged(msg, obj))
            self._send_bytes(data)
            _send("pipe_send", channel, msg, len(data) - _tag_overhead - len(msg),
                  probe.short_repr(obj), t=t, end=self._mpdash_end)
        else:
            data = dumps(obj)
            self._send_bytes(data)
            _count("pipe_send", channel, len(data))

    def recv(self):
        channel = getattr(self, "_mpdash_channel", None)
        if channel is None:
            return original_recv(self)
        self._check_closed()
        self._check_readable()
        buf = self._recv_bytes().getbuffer()
        size = len(buf)
        msg, obj = _receive(lambda: loads(buf))
        if not _paused:
            if msg is not None:
                _send("pipe_recv", channel, msg, size - _tag_overhead - len(msg),
                      probe.short_repr(obj), end=self._mpdash_end)
            else:   # its send was summarised (or untraced): so is the recv
                _count("pipe_recv", channel, size)
        return obj

    original_send, original_recv = Base.send, Base.recv
    Base.send, Base.recv = send, recv

    original_reduce = reduction.ForkingPickler._extra_reducers.get(connection.Connection)
    if original_reduce is not None:
        def reduce_connection(conn):
            rebuild, args = original_reduce(conn)
            channel = getattr(conn, "_mpdash_channel", None)
            if channel is None:
                return rebuild, args
            return _rebuild_connection, (rebuild, args, channel, conn._mpdash_end)
        reduction.register(connection.Connection, reduce_connection)


def _patch_pipe(context) -> None:
    """Name the two ends of every Pipe() the program makes (and only those)."""
    import multiprocessing
    original_pipe = context.BaseContext.Pipe

    def Pipe(self, duplex=True):
        a, b = original_pipe(self, duplex)
        channel = _name("Pipe")
        for end, conn in enumerate((a, b)):
            conn._mpdash_channel, conn._mpdash_end = channel, end
        return a, b

    context.BaseContext.Pipe = Pipe
    # `from multiprocessing import Pipe` is a method bound when the package was imported.
    multiprocessing.Pipe = context._default_context.Pipe


def _rebuild_connection(rebuild, args, channel, end):
    conn = rebuild(*args)
    conn._mpdash_channel, conn._mpdash_end = channel, end
    return conn


# ---------------------------------------------------------------------------- shared memory

_original_synchronized = None


def _patch_shared(sharedctypes) -> None:
    global _original_synchronized
    original_synchronized = _original_synchronized = sharedctypes.synchronized

    def synchronized(obj, lock=None, ctx=None):
        wrapper = original_synchronized(obj, lock, ctx)
        kind = "Value" if isinstance(wrapper, sharedctypes.Synchronized) else "Array"
        wrapper._mpdash_channel = _name(kind)
        _created(wrapper._mpdash_channel, kind, obj)
        return wrapper

    # Pickled by reference (SynchronizedBase.__reduce__), so it must be findable by its name.
    synchronized.__module__, synchronized.__qualname__ = sharedctypes.__name__, "synchronized"
    sharedctypes.synchronized = synchronized

    def __reduce__(self):
        sharedctypes.assert_spawning(self)
        return _rebuild_shared, (self._obj, self._lock, getattr(self, "_mpdash_channel", None))

    sharedctypes.SynchronizedBase.__reduce__ = __reduce__

    value = sharedctypes.Synchronized.value

    def set_value(self, new):
        value.fset(self, new)
        channel = getattr(self, "_mpdash_channel", None)
        if channel is not None and not _paused:
            _trace("shared_write", channel, None, None, f"{channel}.value = {new!r}"[:200],
                   index=None, value=_json_value(new))

    sharedctypes.Synchronized.value = property(value.fget, set_value)

    original_setitem = sharedctypes.SynchronizedArray.__setitem__

    def __setitem__(self, i, new):
        original_setitem(self, i, new)
        channel = getattr(self, "_mpdash_channel", None)
        if channel is None or _paused:
            return
        if isinstance(i, slice):
            start, stop, _ = i.indices(len(self))
            cells = list(new)
            _trace("shared_write", channel, None, None,
                   f"{channel}[{start}:{stop}] = {probe.short_repr(cells)}"[:200],
                   index=start, value=[_json_value(v) for v in cells[:MAX_VALUES]],
                   count=len(cells))
        else:
            if isinstance(i, int) and i < 0:   # the event names the cell, as a slice does
                i += len(self)
            _trace("shared_write", channel, None, None, f"{channel}[{i}] = {new!r}"[:200],
                   index=i, value=_json_value(new))

    sharedctypes.SynchronizedArray.__setitem__ = __setitem__


def _created(channel: str, kind: str, obj) -> None:
    """``shared_init``: the value(s) a Value/Array was created with, so a page can show each
    cell's before → after. Read from the raw ctypes object (no lock: nobody else has it yet).
    Not a message, so a busy process (over its event budget) just leaves it out."""
    if _paused or not _individual():
        return
    try:
        if kind == "Value":
            value, count = _json_value(obj.value), None
        else:
            count = len(obj)
            value = [_json_value(v) for v in obj[:MAX_VALUES]]
    except Exception:   # an exotic ctypes type: the cells still trace their writes
        return
    _send("shared_init", channel, None, None, f"{channel} = {probe.short_repr(value)}"[:200],
          value=value, **({"count": count} if count is not None else {}))


def _rebuild_shared(obj, lock, channel):
    import multiprocessing.sharedctypes  # noqa: F401  (patched on import: sets the original)
    wrapper = _original_synchronized(obj, lock)
    if channel is not None:
        wrapper._mpdash_channel = channel
    return wrapper


# ---------------------------------------------------------------------------- tasks

def _describe(func, args) -> tuple[int, str]:
    """(items, short text) of one pool task; map() sends chunks through ``mapstar``."""
    name = getattr(func, "__name__", "")
    if name in ("mapstar", "starmapstar") and len(args) == 1 and isinstance(args[0], tuple):
        fn, chunk = args[0]
        chunk = list(chunk)
        fname = getattr(getattr(fn, "func", fn), "__name__", repr(fn))
        return len(chunk), f"{fname} over {probe.short_repr(chunk)}"
    inner = getattr(func, "func", None)
    if getattr(inner, "__name__", "") == "_process_chunk" and func.args and args:
        # ProcessPoolExecutor.map sends chunks of argument tuples to _process_chunk(fn, chunk)
        chunk = [a[0] if isinstance(a, tuple) and len(a) == 1 else a for a in args[0]]
        fname = getattr(func.args[0], "__name__", repr(func.args[0]))
        return len(chunk), f"{fname} over {probe.short_repr(chunk)}"
    fname = getattr(getattr(func, "func", func), "__name__", repr(func))
    return 1, f"{fname}({', '.join(probe.short_repr(a) for a in args)})"


def _timed(func, channel: str, msg: str, poll=None, **ids):
    @functools.wraps(func)
    def run_task(*args, **kwargs):
        if _paused:
            return func(*args, **kwargs)
        items, text = _describe(func, args)
        individual = _individual()
        if individual:
            _send("task_start", channel, msg, None, text[:200], items=items, **ids)
        else:
            _count("task_start", channel)
        started = time.perf_counter()
        ok, result = False, None
        try:
            result = func(*args, **kwargs)
            ok = True
            return result
        finally:
            if individual:
                _send("task_end", channel, msg, None,
                      probe.short_repr(result) if ok else "raised", items=items, ok=ok,
                      seconds=round(time.perf_counter() - started, 6), **ids)
            else:
                _count("task_end", channel)
                # Out of work: send the counts before the result goes back (see _TaskTap).
                if poll is not None and _traffic and not _recently_flushed() and not _ready(poll):
                    flush()
    return run_task


def _ready(poll) -> bool:
    try:
        return poll(0)
    except (OSError, ValueError):   # closed: the pool is going away
        return False


def _recently_flushed() -> bool:
    return time.monotonic() - _traffic_since < IDLE_GAP


class _TaskTap:
    """Stands in for a pool's task queue inside one worker: times each task it hands out.

    A busy worker counts its tasks instead of sending an event each (``MAX_EVENTS_PER_S``),
    and a pool may SIGTERM it the moment the last result is in (``with Pool()`` does): SIGTERM
    runs no exit hook, so counts still in memory were lost, most of a short busy map. So a
    worker with counts sends them as soon as it would wait for work: when its task ends with
    the queue empty (before the result goes back), and when it would block on the queue (its
    lock held by another worker, or no task there). At most one such summary per ``IDLE_GAP``:
    within the gap it waits for a task that long before sending. A SIGTERM handler is no cure:
    a signal caught just before the worker blocks on the queue's lock would be handled only
    once the lock is free, which a terminating pool never makes it.
    """

    def __init__(self, queue, channel: str, wrap, send_when_idle: bool = False):
        self._queue, self._channel, self._wrap = queue, channel, wrap
        # Only a process Pool's task queue (a multiprocessing SimpleQueue): thread pools'
        # threads are never killed with counts in memory, and executors' workers end through
        # their exit hooks.
        self._poll = self._lock = None
        if send_when_idle and type(queue).__name__ == "SimpleQueue" and hasattr(queue, "_reader"):
            from multiprocessing import queues   # loaded: this worker was started by it
            self._poll, self._lock = queue._poll, queue._rlock
            self._loads = queues._ForkingPickler.loads

    def get(self, *args, **kwargs):
        if self._poll is not None and _traffic and not args and not kwargs:
            task = self._get_sending_counts()
        else:
            task = self._queue.get(*args, **kwargs)
        if task is None and _traffic:
            # The pool's "exit" sentinel: terminate() may SIGTERM this worker on its way out
            # (its exit hooks take a while), so what is counted goes now.
            flush()
        return self._wrap(task, self._channel, self._poll)

    def _get_sending_counts(self):
        """SimpleQueue.get() (lock, read, unpickle outside the lock), sending the counts
        first if it would wait."""
        lock, poll = self._lock, self._poll
        held = lock.acquire(False)
        try:   # whatever interrupts (Ctrl-C's KeyboardInterrupt), the lock is not left held
            if not (held and poll(0)):
                wait = IDLE_GAP - (time.monotonic() - _traffic_since)
                if wait > 0:   # sent a moment ago: give a task that long to come
                    deadline = time.monotonic() + wait
                    if not held:
                        held = lock.acquire(True, wait)
                    if not (held and poll(max(0.0, deadline - time.monotonic()))):
                        flush()
                else:
                    flush()
                if not held:
                    held = lock.acquire()
            data = self._queue._reader.recv_bytes()
        finally:
            if held:
                lock.release()
        return self._loads(data)

    def __getattr__(self, name):
        return getattr(self._queue, name)


_thread_pools = weakref.WeakKeyDictionary()   # a ThreadPool's task queue -> its channel


def _patch_pool(pool) -> None:
    original_worker, original_setup = pool.worker, pool.Pool._setup_queues

    def wrap(task, channel, poll):
        if task is None or _paused:
            return task
        job, i, func, args, kwds = task
        if func is pool._helper_reraises_exception:
            return task
        return (job, i, _timed(func, channel, f"{channel}/{job}/{i}", poll, job=job, index=i),
                args, kwds)

    def worker(inqueue, outqueue, *args, **kwargs):
        channel = getattr(inqueue, "_mpdash_pool", None) or _thread_pools.get(inqueue, "Pool")
        return original_worker(_TaskTap(inqueue, channel, wrap, send_when_idle=True), outqueue,
                               *args, **kwargs)

    # Pickled by reference under spawn: the child must find this very function by name.
    worker.__module__, worker.__qualname__ = pool.__name__, "worker"
    pool.worker = worker

    def _setup_queues(self):
        original_setup(self)
        self._inqueue._mpdash_pool = channel = _name(type(self).__name__)
        _tap_owner(self, pool, channel)

    def _setup_thread_queues(self):
        original_thread_setup(self)
        # queue.SimpleQueue takes no attributes; its workers are threads of this process
        _thread_pools[self._inqueue] = channel = _name(type(self).__name__)
        _tap_owner(self, pool, channel)

    original_thread_setup = pool.ThreadPool._setup_queues
    pool.Pool._setup_queues = _setup_queues
    pool.ThreadPool._setup_queues = _setup_thread_queues
    _patch_pool_ending(pool)


def _tap_owner(owner, pool, channel: str) -> None:
    """In the pool's owner: ``task_put`` when its task handler puts a task on the task queue,
    ``result_get`` when its result handler takes a result off the result queue (same ``msg`` as
    the worker's task_start / task_end), so both queues' depths are known, not guessed. The
    handlers are given ``_quick_put`` / ``_quick_get`` right after ``_setup_queues``."""
    put, get = owner._quick_put, owner._quick_get

    def quick_put(task):
        t = time.time()   # before: a worker can take the task before put() returns here
        put(task)
        if task is None or _paused or task[2] is pool._helper_reraises_exception:
            return
        job, i, func, args, _ = task
        if _individual():
            items, text = _describe(func, args)
            _send("task_put", channel, f"{channel}/{job}/{i}", None, text[:200], t=t,
                  items=items, job=job, index=i)
        else:
            _count("task_put", channel)

    def quick_get():
        result = get()
        if result is not None and not _paused:
            job, i, _ = result
            if _individual():
                _send("result_get", channel, f"{channel}/{job}/{i}", None, None, job=job, index=i)
            else:
                _count("result_get", channel)
        return result

    owner._quick_put, owner._quick_get = quick_put, quick_get


def _patch_pool_ending(pool) -> None:
    """In the main: a busy pool's terminate() first gives its idle workers ``IDLE_GAP`` to
    send their counts (see _TaskTap). Only a pool that handed back enough results in the last
    second for a worker to be summarising waits; its workers would die with them otherwise."""
    def noting(original_set):
        def _set(self, *args, **kwargs):
            owner = getattr(self, "_pool", None)
            if owner is not None:
                now = time.monotonic()
                window = owner.__dict__.get("_mpdash_results")
                if window is None or now - window[0] >= 1.0:
                    owner._mpdash_results = [now, 1, window[1] if window else 0]
                else:
                    window[1] += 1
            return original_set(self, *args, **kwargs)
        return _set

    for result in (pool.ApplyResult, pool.MapResult, pool.IMapIterator,
                   pool.IMapUnorderedIterator):
        result._set = noting(result._set)
    original_terminate = pool.Pool.terminate

    def terminate(self):
        window = self.__dict__.get("_mpdash_results")
        if (window is not None and not _paused and not isinstance(self, pool.ThreadPool)
                and time.monotonic() - window[0] < 2.0
                and max(window[1], window[2]) * 2 > MAX_EVENTS_PER_S):
            time.sleep(IDLE_GAP * 1.5)
        return original_terminate(self)

    pool.Pool.terminate = terminate


def _patch_executor(process) -> None:
    original_worker = process._process_worker
    original_init = process.ProcessPoolExecutor.__init__

    def wrap(item, channel, poll):
        if item is None or _paused:
            return item
        fn = _timed(item.fn, channel, f"{channel}/{item.work_id}", poll, work_id=item.work_id)
        return process._CallItem(item.work_id, fn, item.args, item.kwargs)

    def _process_worker(call_queue, *args, **kwargs):
        channel = getattr(call_queue, "_mpdash_pool", None) or "Executor"
        return original_worker(_TaskTap(call_queue, channel, wrap), *args, **kwargs)

    _process_worker.__module__ = process.__name__
    _process_worker.__qualname__ = "_process_worker"
    process._process_worker = _process_worker

    def __init__(self, *args, **kwargs):
        original_init(self, *args, **kwargs)
        queue = getattr(self, "_call_queue", None)
        if queue is not None:
            queue._mpdash_pool = _name("Executor")

    process.ProcessPoolExecutor.__init__ = __init__


# ---------------------------------------------------------------------------- processes

def _patch_processes(process_module) -> None:
    """A child started inside ``paused()`` stays paused, whatever the start method."""
    BaseProcess = process_module.BaseProcess
    original_start, original_bootstrap = BaseProcess.start, BaseProcess._bootstrap

    def start(self):
        self._mpdash_paused = _paused   # travels in the pickled Process under spawn
        return original_start(self)

    def _bootstrap(self, *args, **kwargs):
        global _paused
        if getattr(self, "_mpdash_paused", False):
            _paused = True
        try:
            return original_bootstrap(self, *args, **kwargs)
        finally:
            flush()   # children leave through os._exit: atexit would not run

    BaseProcess.start, BaseProcess._bootstrap = start, _bootstrap


# ---------------------------------------------------------------------------- installing

class _PatchOnImport(importlib.abc.MetaPathFinder):
    """Runs a patch right after a module's first import (not at start-up: they cost ms)."""

    def __init__(self, patches: dict):
        self.patches = patches

    def find_spec(self, name, path=None, target=None):
        if name not in self.patches:
            return None
        for finder in sys.meta_path:
            if finder is self or not hasattr(finder, "find_spec"):
                continue
            spec = finder.find_spec(name, path, target)
            if spec is not None and spec.loader is not None:
                break
        else:
            return None
        patch, loader = self.patches.pop(name), spec.loader
        original_exec = loader.exec_module

        def exec_module(module):
            original_exec(module)
            _apply(patch, module)
        spec.loader = _Loader(loader, exec_module)
        return spec


class _Loader(importlib.abc.Loader):
    def __init__(self, loader, exec_module):
        self._loader, self._exec = loader, exec_module

    def create_module(self, spec):
        return self._loader.create_module(spec)

    def exec_module(self, module):
        self._exec(module)

    def __getattr__(self, name):
        return getattr(self._loader, name)


def _apply(patch, module) -> None:
    try:
        patch(module)
    except Exception as exc:   # tracing must never break the program it watches
        sys.__stderr__.write(f"mpdash: tracing of {module.__name__} not installed: {exc!r}\n")


def install() -> bool:
    """Patch this process; idempotent. Called by ``probe.install()`` in every run process."""
    global _installed, _pid, _window_start, _traffic_since, _tag_overhead
    if _installed:
        return True
    _installed = True
    _pid = os.getpid()
    _window_start = _traffic_since = time.monotonic()
    import pickle
    # Measured on an object long enough to be framed (as real messages are; None is not), and
    # per character of the id, so a size is the program's own pickled bytes.
    sample = "mpdash"
    _tag_overhead = len(pickle.dumps(_Tagged("", sample), protocol=pickle.DEFAULT_PROTOCOL)) \
        - len(pickle.dumps(sample, protocol=pickle.DEFAULT_PROTOCOL))
    from multiprocessing import context, process, reduction
    _apply(_patch_processes, process)
    _apply(_patch_pipe, context)

    def connections(module):
        _patch_connections(module, reduction)

    patches = {
        "multiprocessing.queues": _patch_queues,
        "multiprocessing.connection": connections,
        "multiprocessing.sharedctypes": _patch_shared,
        "multiprocessing.pool": _patch_pool,
        "concurrent.futures.process": _patch_executor,
    }
    for name in [n for n in patches if n in sys.modules]:
        _apply(patches.pop(name), sys.modules[name])
    if patches:
        sys.meta_path.insert(0, _PatchOnImport(patches))
    os.register_at_fork(after_in_child=_fresh_after_fork)
    atexit.register(flush)
    return True
