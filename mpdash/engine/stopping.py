"""Stopping a run: Stop, the limits, and signalling every process the run has."""
from __future__ import annotations

import concurrent.futures
import os
import signal
import time

from mpdash.engine.context import Core, LiveRun


def request_stop(core: Core, run_id: str, reason: str, want_future: bool, at_once: bool = False):
    """SIGTERM the run now, SIGKILL after the grace (at once: no grace). With ``want_future``,
    a Future resolved when the run has ended."""
    live = core.live.get(run_id)
    if live is None:
        done: concurrent.futures.Future = concurrent.futures.Future()
        done.set_result(core.hub.get(run_id))
        return done if want_future else None
    run = live.run
    if run.stop_reason is None:
        run.stop_reason = reason
        kill_group(live, signal.SIGTERM)
        # A run growing past the process limit may be a fork bomb: no grace for it.
        live.kill_at = time.monotonic() + (0 if at_once else core.hub.limits.stop_grace)
    return waiter(core, run_id) if want_future else None


def waiter(core: Core, run_id: str):
    """A Future resolved when the run ends; None when it is not live."""
    live = core.live.get(run_id)
    if live is None:
        return None
    fut: concurrent.futures.Future = concurrent.futures.Future()
    live.waiters.append(fut)
    return fut


def kill_group(live: LiveRun, sig: int) -> None:
    """Signal the run's process group and every known process (some may have left it)."""
    if sig == signal.SIGKILL:
        live.killed.update(live.run.live_pids())
    if live.cgroup is not None:
        # The kernel's view of the run: setsid() or a cleared environment cannot hide.
        live.cgroup.kill() if sig == signal.SIGKILL else live.cgroup.signal(sig)
    try:
        os.killpg(live.popen.pid, sig)
    except (ProcessLookupError, PermissionError):
        pass
    for pid in live.run.live_pids():
        try:
            os.kill(pid, sig)
        except (ProcessLookupError, PermissionError):
            pass


def kill_all(core: Core) -> None:
    """Server exit: SIGKILL every run, no grace."""
    for live in list(core.live.values()):
        if live.run.stop_reason is None:
            live.run.stop_reason = "server shut down"
        kill_group(live, signal.SIGKILL)
        live.kill_at = time.monotonic()
