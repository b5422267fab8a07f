"""Time on the loop: the time limit and the kill after a grace, periodic discovery, and ending
a run once its main program has exited (leftovers killed, last output read, analysis)."""
from __future__ import annotations

import logging
import os
import shutil
import signal
import time

from mpdash import pools as pool_insights
from mpdash import procfs, verdict
from mpdash.engine import livepools, reaping, stopping, streams
from mpdash.engine.context import Core, LiveRun, scratch_folder, stacks_folder

log = logging.getLogger(__name__)

DISCOVERY_PERIOD = 0.5      # s between scans for children the probe cannot report
DISCOVERY_SHARE = 0.005     # at most this share of a core spent scanning, scans spaced out
LEFTOVER_GRACE = 0.5        # s after the main's exit before what is left of the run is killed
FINALIZE_GRACE = 1.0        # s more to collect the last exits and output before the run ends
STRAYS_AFTER = 5.0          # s after a run's end during which its stray zombies are reaped


def tick(core: Core) -> float | None:
    """The timers due now; returns the seconds until the next one (None: none planned)."""
    now = time.monotonic()
    for live in list(core.live.values()):
        if live.deadline is not None and now >= live.deadline and live.run.stop_reason is None:
            live.deadline = None
            stopping.request_stop(core, live.run.id, f"time limit: ran longer than "
                                                     f"{live.run.time_limit:g} s", False)
        if live.kill_at is not None and now >= live.kill_at:
            live.kill_at = now + 0.2  # keep killing whatever still appears
            stopping.kill_group(live, signal.SIGKILL)
        if live.main_exited_at is not None:
            maybe_finish(core, live, now)
    livepools.tick(core, time.monotonic())
    if (core.live or now < core.strays_until) and now >= core.next_discovery:
        spent = time.thread_time()
        if core.live:
            reaping.discover(core)
        reaping.reap_strays(core)
        # A scan's cost grows with the processes it reads: past DISCOVERY_SHARE of a core the
        # scans space out (what the probe reports, multiprocessing's children, is never late).
        spent = time.thread_time() - spent
        core.next_discovery = time.monotonic() + max(DISCOVERY_PERIOD, spent / DISCOVERY_SHARE)
    return _next_timeout(core)


def _next_timeout(core: Core) -> float | None:
    now = time.monotonic()
    times = [core.next_discovery] if core.live or now < core.strays_until else []
    times += livepools.next_due(core.live.values())
    for live in core.live.values():
        times += [t for t in (live.deadline, live.kill_at) if t is not None]
        if live.main_exited_at is not None:
            times.append(live.main_exited_at + 0.05)
    return max(0.0, min(times) - now) if times else None


def maybe_finish(core: Core, live: LiveRun, now: float) -> None:
    """After the main's exit: let the rest end on its own briefly, then kill it, then end."""
    run = live.run
    waited = now - live.main_exited_at
    if not run.live_pids() or (live.cgroup is not None and waited >= LEFTOVER_GRACE):
        # Before deciding that nothing is left: a child nobody reported (subprocess,
        # os.fork) that no scan has seen yet is the server's orphan now (its subreaper) or
        # in the run's cgroup. Adopted, it is ended with the run instead of outliving it.
        reaping.adopt(core, procfs.children_of(core.server_pid))
    if run.live_pids():
        if waited < LEFTOVER_GRACE:
            return
        if live.kill_at is None:
            live.kill_at = now   # the next timer round SIGKILLs the group and stragglers
            return
        if waited < LEFTOVER_GRACE + FINALIZE_GRACE:
            return
        for pid in run.live_pids():   # unkillable or unseen exit: record it and move on
            live.killed.add(pid)
            reaping.ended(core, live, pid)
    elif live.pipes and waited < FINALIZE_GRACE:
        return   # something outside the run still holds its stdout: wait a little
    finish(core, live)


def _end_late_births(core: Core, live: LiveRun) -> None:
    """A process that reported itself in the last messages drained (a late ``hello``) was
    born after the leftovers were killed: kill it too, so nothing outlives its run and no pidfd
    outlives the run's bookkeeping."""
    for pid in list(live.pidfds):
        live.killed.add(pid)
        try:
            signal.pidfd_send_signal(live.pidfds[pid], signal.SIGKILL)
        except OSError:
            pass   # already gone
        reaping.ended(core, live, pid)


def _outcome(live: LiveRun) -> tuple[str, str | None]:
    """The run's final state and error, from how it was stopped and its main's exit code."""
    run = live.run
    main_code = run.processes[run.main_pid].exitcode
    if run.stop_reason is not None:
        return "stopped", run.stop_reason
    if main_code == 0:
        return "finished", None
    return "failed", run.error or f"the main process exited with code {main_code}"


def finish(core: Core, live: LiveRun) -> None:
    run, hub = live.run, core.hub
    streams.drain(core, live)
    _end_late_births(core, live)
    try:
        core.on_finish(run)
    except Exception:
        log.exception("on_finish of run %s", run.id)
    streams.close_all(core, live)
    if live.cgroup is not None:
        core.cgroups.release(live.cgroup)
    try:
        os.unlink(live.sock_path)
    except OSError:
        pass
    reaping.settle_unknown(core, live)
    shutil.rmtree(stacks_folder(core, run.id), ignore_errors=True)
    shutil.rmtree(scratch_folder(core, run.id), ignore_errors=True)
    state, error = _outcome(live)
    # A lesson that did not finish measured nothing; a program that failed or was stopped
    # still had processes and ends to describe (engine.program).
    if live.analyze is not None and (state == "finished" or run.kind == "watch"):
        try:
            # Findings computed from the run's own numbers, read with no change landing.
            hub.add_findings(run, hub.atomic(live.analyze, run) or [])
        except Exception as exc:
            # Findings must never vanish silently: the run says its analysis broke.
            log.exception("analysis of run %s", run.id)
            error = f"the analysis of this run failed: {type(exc).__name__}: {exc}"
    if run.kind == "watch":   # no lesson says what matters: the Run's own numbers do
        main_code = run.processes[run.main_pid].exitcode
        hub.add_findings(run, [hub.atomic(verdict.watch_verdict, run, state, main_code, error,
                                          time.time())])
    pools = _pool_insights(hub, run)
    del core.live[run.id]
    core.strays_until = time.monotonic() + STRAYS_AFTER
    reaping.reap_strays(core)
    hub.set_state(run, state, ended_at=time.time(), error=error, pools=pools)
    for fut in live.waiters:
        if not fut.done():
            fut.set_result(run)


def _pool_insights(hub, run) -> list:
    """Every pool of the run (docs/API.md ``Pool``) and its findings, whatever the run's end:
    a stopped run's pool still had workers. Computed on copies, outside the Hub's lock."""
    try:
        events, processes, frames = hub.atomic(
            lambda: (list(run.events), dict(run.processes), list(run.frames)))
        pools, found = pool_insights.insights(events, processes, frames)
        hub.add_findings(run, found)
        return pools
    except Exception:
        log.exception("pool insights of run %s", run.id)
        return []
