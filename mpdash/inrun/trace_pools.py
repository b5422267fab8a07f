"""``Pool``, ``ThreadPool`` and ``ProcessPoolExecutor`` tasks, in the worker that runs them
→ ``task_start`` / ``task_end``; a pool is named where it is created (``Pool-1``)."""
from __future__ import annotations

import functools
import threading
import time
import weakref

from mpdash import protocol
from mpdash.inrun import budget, naming
from mpdash.inrun.shortrepr import short_repr

IDLE_GAP = 0.01             # s: a pool worker out of tasks sends its counts, at most this often


def _describe(func, args) -> tuple[int, str]:
    """(items, short text) of one pool task; map() sends chunks through ``mapstar``."""
    name = getattr(func, "__name__", "")
    if name in ("mapstar", "starmapstar") and len(args) == 1 and isinstance(args[0], tuple):
        fn, chunk = args[0]
        chunk = list(chunk)
        fname = getattr(getattr(fn, "func", fn), "__name__", repr(fn))
        return len(chunk), f"{fname} over {short_repr(chunk)}"
    inner = getattr(func, "func", None)
    if getattr(inner, "__name__", "") == "_process_chunk" and func.args and args:
        # ProcessPoolExecutor.map sends chunks of argument tuples to _process_chunk(fn, chunk)
        chunk = [a[0] if isinstance(a, tuple) and len(a) == 1 else a for a in args[0]]
        fname = getattr(func.args[0], "__name__", repr(func.args[0]))
        return len(chunk), f"{fname} over {short_repr(chunk)}"
    items = getattr(func, "items", None)
    if type(func).__name__ == "BatchedCalls" and isinstance(items, list) and items:
        # joblib.Parallel sends its calls in batches: [(func, args, kwargs), ...]
        first, args, kwargs = items[0]
        fname = getattr(getattr(first, "func", first), "__name__", repr(first))
        if len(items) == 1:
            shown = ([short_repr(a) for a in args]
                     + [f"{k}={short_repr(v)}" for k, v in kwargs.items()])
            return 1, f"{fname}({', '.join(shown)})"
        calls = [i[1][0] if len(i[1]) == 1 and not i[2] else i[1] for i in items]
        return len(items), f"{fname} over {short_repr(calls)}"
    fname = getattr(getattr(func, "func", func), "__name__", repr(func))
    return 1, f"{fname}({', '.join(short_repr(a) for a in args)})"


def timed(func, channel: str, msg: str, poll=None, **ids):
    @functools.wraps(func)
    def run_task(*args, **kwargs):
        if budget.is_paused():
            return func(*args, **kwargs)
        items, text = _describe(func, args)
        individual = budget.individual()
        if individual:
            budget.emit(protocol.TASK_START, channel, msg, None, text[:200], items=items, **ids)
        else:
            budget.count(protocol.TASK_START, channel)
        started = time.perf_counter()
        ok, result = False, None
        try:
            result = func(*args, **kwargs)
            ok = True
            return result
        finally:
            if individual:
                budget.emit(protocol.TASK_END, channel, msg, None,
                            short_repr(result) if ok else "raised", items=items, ok=ok,
                            seconds=round(time.perf_counter() - started, 6), **ids)
            else:
                budget.count_task(channel, time.perf_counter() - started, items, text[:200])
                # Out of work: send the counts before the result goes back (see TaskTap).
                if (poll is not None and budget.pending() and budget.since_flush() >= IDLE_GAP
                        and not _ready(poll)):
                    budget.flush()
    return run_task


def _ready(poll) -> bool:
    try:
        return poll(0)
    except (OSError, ValueError):   # closed: the pool is going away
        return False


class TaskTap:
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
        if self._poll is not None and budget.pending() and not args and not kwargs:
            task = self._get_sending_counts()
        else:
            task = self._queue.get(*args, **kwargs)
        if task is None and budget.pending():
            # The pool's "exit" sentinel: terminate() may SIGTERM this worker on its way out
            # (its exit hooks take a while), so what is counted goes now.
            budget.flush()
        return self._wrap(task, self._channel, self._poll)

    def _get_sending_counts(self):
        """SimpleQueue.get() (lock, read, unpickle outside the lock), sending the counts
        first if it would wait."""
        lock, poll = self._lock, self._poll
        held = lock.acquire(False)
        try:   # whatever interrupts (Ctrl-C's KeyboardInterrupt), the lock is not left held
            if not (held and poll(0)):
                wait = IDLE_GAP - budget.since_flush()
                if wait > 0:   # sent a moment ago: give a task that long to come
                    deadline = time.monotonic() + wait
                    if not held:
                        held = lock.acquire(True, wait)
                    if not (held and poll(max(0.0, deadline - time.monotonic()))):
                        budget.flush()
                else:
                    budget.flush()
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
_thread_channels: set = set()                  # the channels of this process's ThreadPools


def patch_pool(pool) -> None:
    """Patch the module ``multiprocessing.pool``."""
    original_worker, original_setup = pool.worker, pool.Pool._setup_queues

    def wrap(task, channel, poll):
        if task is None or budget.is_paused():
            return task
        job, i, func, args, kwds = task
        if func is pool._helper_reraises_exception:
            return task
        ids = {"job": job, "index": i}
        if channel in _thread_channels:
            # A ThreadPool's workers share one pid: the thread tells them apart (we are in it).
            ids["tid"] = threading.get_native_id()
        return (job, i, timed(func, channel, f"{channel}/{job}/{i}", poll, **ids), args, kwds)

    def worker(inqueue, outqueue, *args, **kwargs):
        channel = getattr(inqueue, naming.POOL, None) or _thread_pools.get(inqueue, "Pool")
        return original_worker(TaskTap(inqueue, channel, wrap, send_when_idle=True), outqueue,
                               *args, **kwargs)

    # Pickled by reference under spawn: the child must find this very function by name.
    worker.__module__, worker.__qualname__ = pool.__name__, "worker"
    pool.worker = worker

    def _setup_queues(self):
        original_setup(self)
        name = naming.new_name(type(self).__name__)
        setattr(self._inqueue, naming.POOL, name)
        _tap_owner(self, pool, name)

    def _setup_thread_queues(self):
        original_thread_setup(self)
        # queue.SimpleQueue takes no attributes; its workers are threads of this process
        name = _thread_pools[self._inqueue] = naming.new_name(type(self).__name__)
        _thread_channels.add(name)
        _tap_owner(self, pool, name)

    original_thread_setup = pool.ThreadPool._setup_queues
    pool.Pool._setup_queues = _setup_queues
    pool.ThreadPool._setup_queues = _setup_thread_queues
    _patch_pool_ending(pool)


def _tap_owner(owner, pool, channel: str) -> None:
    """In the pool's owner: ``task_put`` when its task handler puts a task on the task queue,
    ``result_get`` when its result handler takes a result off the result queue (same ``msg`` as
    the worker's task_start / task_end), so both queues' depths are known, not guessed. The
    handler threads are given ``_quick_put`` / ``_quick_get`` right after ``_setup_queues``."""
    put, get = owner._quick_put, owner._quick_get

    def quick_put(task):
        t = time.time()   # before: a worker can take the task before put() returns here
        put(task)
        if task is None or budget.is_paused() or task[2] is pool._helper_reraises_exception:
            return
        job, i, func, args, _ = task
        if budget.individual():
            items, text = _describe(func, args)
            budget.emit(protocol.TASK_PUT, channel, f"{channel}/{job}/{i}", None, text[:200],
                        t=t, items=items, job=job, index=i)
        else:
            budget.count(protocol.TASK_PUT, channel)

    def quick_get():
        result = get()
        if result is not None and not budget.is_paused():
            job, i, _ = result
            if budget.individual():
                budget.emit(protocol.RESULT_GET, channel, f"{channel}/{job}/{i}", None, None,
                            job=job, index=i)
            else:
                budget.count(protocol.RESULT_GET, channel)
        return result

    owner._quick_put, owner._quick_get = quick_put, quick_get


def _patch_pool_ending(pool) -> None:
    """In the main: a busy pool's terminate() first gives its idle workers ``IDLE_GAP`` to
    send their counts (see TaskTap). Only a pool that handed back enough results in the last
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
        if (window is not None and not budget.is_paused() and not isinstance(self, pool.ThreadPool)
                and time.monotonic() - window[0] < 2.0
                and max(window[1], window[2]) * 2 > budget.MAX_EVENTS_PER_S):
            time.sleep(IDLE_GAP * 1.5)
        return original_terminate(self)

    pool.Pool.terminate = terminate


def tap_process_worker(module, original_worker, wrap, default_channel: str) -> None:
    """Replace ``module._process_worker`` (concurrent.futures' or loky's) by one that reads its
    call queue through a TaskTap. Pickled by reference: the worker must find this very function
    by its name, so it takes the original's module and name."""
    def _process_worker(call_queue, *args, **kwargs):
        channel = getattr(call_queue, naming.POOL, None) or default_channel
        return original_worker(TaskTap(call_queue, channel, wrap), *args, **kwargs)

    _process_worker.__module__ = module.__name__
    _process_worker.__qualname__ = "_process_worker"
    module._process_worker = _process_worker


def patch_executor(process) -> None:
    """Patch the module ``concurrent.futures.process``."""
    original_worker = process._process_worker
    original_init = process.ProcessPoolExecutor.__init__

    def wrap(item, channel, poll):
        if item is None or budget.is_paused():
            return item
        fn = timed(item.fn, channel, f"{channel}/{item.work_id}", poll, work_id=item.work_id)
        return process._CallItem(item.work_id, fn, item.args, item.kwargs)

    tap_process_worker(process, original_worker, wrap, "Executor")

    def __init__(self, *args, **kwargs):
        original_init(self, *args, **kwargs)
        queue = getattr(self, "_call_queue", None)
        if queue is not None:
            setattr(queue, naming.POOL, naming.new_name("Executor"))

    process.ProcessPoolExecutor.__init__ = __init__
