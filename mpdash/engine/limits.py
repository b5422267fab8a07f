"""Which limits a run has, and whether it is past them.

A lesson is ours: its limits are the server's (``Limits``), and its process limit counts every
lesson's processes together, since lessons share the machine with the class. A watched program
is the user's: a ``Pool()`` on a 70-core server has 70 workers, and holding many GiB may be the
point of it, so it has no time or memory limit unless asked (``watch --timeout/--max-rss``) and
its own process limit, ``max(256, 8 x cores)`` by default (``--max-procs``), counting its own
processes only: there to stop a runaway fork loop, not an ordinary program.
"""
from __future__ import annotations

import os

from mpdash.state import Hub, Limits, Run

WATCH_MIN_PROCESSES = 256
WATCH_PROCESSES_PER_CORE = 8


def watch_process_limit(cores: int | None = None) -> int:
    """The default process limit of a watched program on this machine."""
    return max(WATCH_MIN_PROCESSES, WATCH_PROCESSES_PER_CORE * (cores or os.cpu_count() or 1))


def for_lesson(run: Run, limits: Limits) -> None:
    run.time_limit = limits.run_seconds
    run.process_limit = limits.max_processes
    run.rss_limit = limits.run_rss_bytes


def for_watch(run: Run, max_procs: int | None, max_rss: int | None,
              timeout: float | None) -> None:
    run.time_limit = timeout
    run.process_limit = max_procs if max_procs is not None else watch_process_limit()
    run.rss_limit = max_rss


def run_tasks(run: Run, limits: Limits) -> int:
    """The run's cgroup ``pids.max``. It counts threads too: a worker has a few (a queue's
    feeder, the probe's channel, a pool's handlers), so a watched program's kernel cap sits
    ``Limits.tasks_per_process`` tasks per allowed process above its process limit."""
    if run.kind == "lesson" or run.process_limit is None:
        return limits.run_tasks
    return max(limits.run_tasks, limits.tasks_per_process * run.process_limit)


def live_count(hub: Hub, run: Run) -> int:
    """The processes a run's process limit counts (see the module's docstring)."""
    if run.kind != "lesson":
        return len(run.live_pids())
    return hub.atomic(lambda: sum(len(r.live_pids()) for r in hub.runs.values()
                                  if r.kind == "lesson" and r.live))


def refusal(hub: Hub, run: Run) -> str | None:
    """Why the run may not start now (HTTP 429), or None."""
    limits = hub.limits
    if len(hub.live_runs()) >= limits.max_runs:
        return f"limit reached: at most {limits.max_runs} runs at once"
    if run.kind == "lesson" and live_count(hub, run) >= limits.max_processes:
        return f"limit reached: at most {limits.max_processes} live processes"
    return None


def over_processes(hub: Hub, run: Run) -> str | None:
    """The stop reason when the run has just gone past its process limit, else None."""
    if run.process_limit is None or live_count(hub, run) <= run.process_limit:
        return None
    hint = " (watch --max-procs)" if run.kind != "lesson" else ""
    return f"process limit: more than {run.process_limit} live processes{hint}"


def over_memory(run: Run, rss_kib: int) -> str | None:
    """The stop reason when the run's summed RSS (KiB) is past its memory limit, else None."""
    if run.rss_limit is None or rss_kib * 1024 <= run.rss_limit:
        return None
    hint = " (watch --max-rss)" if run.kind != "lesson" else ""
    return (f"memory limit: the run's processes used {rss_kib / 1024:.0f} MiB of RSS "
            f"(limit {run.rss_limit / 2**20:.0f} MiB){hint}")
