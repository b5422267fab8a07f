"""joblib's and loky's process pools (``joblib.Parallel``'s default backend, behind
scikit-learn): each task, in the worker that runs it → ``task_start`` / ``task_end``, as for
``Pool`` (see trace_pools). loky is concurrent.futures' executor rewritten, so its worker loop
takes the same tap; its workers are fresh interpreters (loky's own launcher), patched on import.

The module names are joblib's vendored copy and the standalone ``loky`` package alike.
"""
from __future__ import annotations

from mpdash.inrun import naming
from mpdash.inrun.trace_pools import tap_process_worker, timed


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

    tap_process_worker(process_executor, original_worker, wrap, "Loky")

    def _setup_queues(self, *args, **kwargs):
        original_setup(self, *args, **kwargs)
        setattr(self._call_queue, naming.POOL, naming.new_name("Loky"))

    process_executor.ProcessPoolExecutor._setup_queues = _setup_queues
