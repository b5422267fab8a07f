"""joblib's and loky's process pools (``joblib.Parallel``'s default backend, behind
scikit-learn): each task, in the worker that runs it → ``task_start`` / ``task_end``, as for
``Pool`` (see trace_pools). loky is concurrent.futures' executor rewritten, so its worker loop
takes the same tap; its workers are fresh interpreters (loky's own launcher), patched on import.

The module names are joblib's vendored copy and the standalone ``loky`` package alike.
"""
from __future__ import annotations

from mpdash.inrun import naming
from mpdash.inrun.trace_pools import TaskTap, timed


def patch_queues(queues) -> None:
    """Patch ``<loky>.backend.queues``: its Queue pickles its own state, without our names."""
    naming.carry_names(queues.Queue)


def patch_executor(process_executor) -> None:
    """Patch ``<loky>.process_executor``."""
    original_worker = process_executor._process_worker
    original_setup = process_executor.ProcessPoolExecutor._setup_queues

    def wrap(item, channel, poll):
        if item is None or not hasattr(item, "fn"):
            return item
        # In place: a loky call item also carries the pickler the parent chose.
        item.fn = timed(item.fn, channel, f"{channel}/{item.work_id}", poll, work_id=item.work_id)
        return item

    def _process_worker(call_queue, *args, **kwargs):
        channel = getattr(call_queue, naming.POOL, None) or "Loky"
        return original_worker(TaskTap(call_queue, channel, wrap), *args, **kwargs)

    # Pickled by reference: the worker must find this very function by its name.
    _process_worker.__module__ = process_executor.__name__
    _process_worker.__qualname__ = "_process_worker"
    process_executor._process_worker = _process_worker

    def _setup_queues(self, *args, **kwargs):
        original_setup(self, *args, **kwargs)
        setattr(self._call_queue, naming.POOL, naming.new_name("Loky"))

    process_executor.ProcessPoolExecutor._setup_queues = _setup_queues
