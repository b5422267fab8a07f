"""Run lifecycle: start a run as its own main program, watch it, stop it, leave nothing behind.

``Engine`` is the facade; the work is done in ``mpdash.engine`` by job (see its docstring).
One long-lived *supervisor* thread (``engine.reactor``) does all of it, for every run:
- it forks the run processes (``PR_SET_PDEATHSIG`` fires when the *thread* that forked a child
  exits, so that thread must live as long as the server);
- it reads each run's probe connections (births, exits, output, events) and raw stdout/stderr;
- it holds a pidfd per process, so an exit is seen the instant it happens, not at a poll;
- it enforces the time limit and finishes Stop (SIGTERM the group, SIGKILL after a grace).

Other threads talk to it through ``reactor.call`` (a queue plus a wake-up pipe) and read ``Hub``.
The server is a child subreaper, so a run's orphans become its children and are reaped here.
"""
from __future__ import annotations

import concurrent.futures
import json
import logging
import os
import shutil
import subprocess
import sys
import tempfile
import time
from typing import Any, Callable

from mpdash import lessons, protocol
from mpdash.cgroups import Cgroups
from mpdash.engine import finishing, launch, limits, program, reaping, stopping
from mpdash.engine.context import Core, EngineBusy, LimitError, stacks_folder
from mpdash.engine.launch import BOOT_DIR, PROJECT_ROOT
from mpdash.engine.reactor import Reactor
from mpdash.state import Hub, Run, new_run_id

__all__ = ["Engine", "EngineBusy", "LimitError", "BOOT_DIR", "PROJECT_ROOT"]

log = logging.getLogger(__name__)


class Engine:
    """Starts, watches and stops runs; owns the supervisor thread."""

    def __init__(self, hub: Hub, python: str = sys.executable, on_birth: Callable | None = None,
                 on_death: Callable | None = None, cgroups: bool = True,
                 on_finish: Callable | None = None):
        self.hub = hub
        self.python = python
        self.subreaper = launch.set_child_subreaper()
        tmp = tempfile.mkdtemp(prefix="mpdash-")
        os.chmod(tmp, 0o700)
        self._reactor = Reactor(tick=lambda: finishing.tick(self._core),
                                idle=lambda: not self._core.live)
        self._core = Core(
            hub=hub, reactor=self._reactor, cgroups=Cgroups(enabled=cgroups),
            server_pid=os.getpid(), tmp=tmp,
            # Every process of every run carries this in its environment: how the watchdog
            # (and orphan discovery) tell this engine's processes from anyone else's.
            marker=f"{protocol.ENV_ENGINE}={os.path.basename(tmp)}",
            on_birth=on_birth or (lambda run, pid: None),
            # Called the instant an exit is seen, before anyone reaps (the sampler's last reading).
            on_death=on_death or (lambda run, pid: None),
            on_finish=on_finish or (lambda run: None))
        self._watchdog = launch.start_watchdog(python, self.marker, self.cgroups, tmp)
        self._reactor.start()

    # Read by the dashboard, the CLI and the tests.
    @property
    def marker(self) -> str:
        return self._core.marker

    @property
    def server_pid(self) -> int:
        return self._core.server_pid

    @property
    def cgroups(self) -> Cgroups:
        return self._core.cgroups

    @property
    def stacks_enabled(self) -> bool:
        """Whether new runs carry the in-run stacks half (off only to measure its cost)."""
        return self._core.stacks

    @stacks_enabled.setter
    def stacks_enabled(self, on: bool) -> None:
        self._core.stacks = bool(on)

    def stacks_folder(self, run_id: str) -> str:
        """Where the processes of a run write their stack dumps (mpdash/stacks.py)."""
        return stacks_folder(self._core, run_id)

    # =========================================================================== public API
    def start_lesson(self, lesson_id: Any, params: Any = None, python: str | None = None) -> Run:
        """Validate, check limits, start. Raises ParamError (400) or LimitError (429).

        ``python``: the interpreter's path (default: the server's); the caller vouches for it
        (the CLI's ``--python``, or an id the server's own list resolved, never a path from HTTP).
        """
        lesson = lessons.get(lesson_id)
        values = lessons.validate_params(lesson, params)
        argv = [python or self.python, "-m", "mpdash.harness", lesson.module, json.dumps(values)]
        run = Run(id=new_run_id(), lesson=lesson.id, title=lesson.title, params=values)
        limits.for_lesson(run, self.hub.limits)
        return self._launched(self._call(launch.launch, run, argv, lesson.analyze, None, None))

    def start_command(self, argv: list[str], title: str | None = None,
                      timeout: float | None = None, echo: Callable | None = None,
                      stdin: Any = subprocess.DEVNULL, cwd: str | None = None,
                      max_procs: int | None = None, max_rss: int | None = None) -> Run:
        """Run a user's own program as a run (``mpdash watch``). Its limits are a program's
        (engine.limits): none on time or memory unless given, ``max_procs`` default
        ``max(256, 8 x cores)``."""
        if not argv or not all(isinstance(a, str) for a in argv):
            raise lessons.ParamError("command must be a non-empty list of strings")
        folder = os.path.abspath(cwd or os.getcwd())
        run = Run(id=new_run_id(), lesson="watch", title=title or " ".join(argv)[:120],
                  params={}, kind="watch", command=list(argv), cwd=folder,
                  source=program.read_source(list(argv), folder, dict(os.environ)))
        limits.for_watch(run, max_procs, max_rss, timeout)
        return self._launched(self._call(launch.launch, run, list(argv), program.findings,
                                         echo, (stdin, cwd)))

    @staticmethod
    def _launched(fut: concurrent.futures.Future) -> Run:
        try:
            return fut.result(timeout=10)
        except concurrent.futures.TimeoutError:
            if fut.cancel():   # never began: nothing starts, and the caller hears why
                raise LimitError("the engine is too busy to start a run now: try again") from None
            return fut.result()   # already launching: it answers in moments

    def stop(self, run_id: str, reason: str = "stopped by the user", wait: float = 3.0) -> Run | None:
        """Stop a run and return it once every one of its processes is gone."""
        run = self.hub.get(run_id)
        if run is None:
            return None
        try:
            done = self._call(stopping.request_stop, run_id, reason, True).result(timeout=5)
        except (concurrent.futures.TimeoutError, RuntimeError) as exc:
            # A loop that does not answer in 5 s (or is shutting down) must not become a 500.
            raise EngineBusy(f"the engine did not take the stop: {exc or 'timed out'}") from None
        if done is not None:
            try:
                done.result(timeout=wait)
            except concurrent.futures.TimeoutError:
                log.warning("run %s still had processes %.1f s after Stop", run_id, wait)
        return run

    def request_stop(self, run_id: str, reason: str) -> None:
        """Ask for a stop without waiting (used by the sampler for the memory limit)."""
        self._call(stopping.request_stop, run_id, reason, False)

    def wait(self, run_id: str, timeout: float | None = None) -> Run | None:
        """Block until the run has ended (for the CLI and tests)."""
        fut = self._call(stopping.waiter, run_id).result(timeout=5)
        if fut is not None:
            fut.result(timeout=timeout)
        return self.hub.get(run_id)

    def live_pids(self) -> dict[str, list[int]]:
        return self.hub.live_pids()

    def cgroup_of(self, run_id: str):
        """The live run's cgroup (None: ended, or the process-group fallback). For tests."""
        live = self._core.live.get(run_id)
        return live.cgroup if live is not None else None

    def shutdown(self, timeout: float = 2.0) -> None:
        """Kill every run at once (server exit), wait for their processes, stop the thread."""
        if self._reactor.closing:
            return
        core = self._core
        try:
            self._call(stopping.kill_all).result(timeout=timeout)
            deadline = time.monotonic() + timeout
            while core.live and time.monotonic() < deadline:
                time.sleep(0.01)
            # Killed strays of the last runs may still be turning into zombies: reap them.
            for _ in range(5):
                self._call(reaping.reap_strays).result(timeout=timeout)
                time.sleep(0.02)
        except Exception:
            log.exception("shutdown")
        finally:
            self._reactor.close(timeout)
            core.cgroups.close()
            launch.stop_watchdog(self._watchdog)
            self._watchdog = None
            shutil.rmtree(core.tmp, ignore_errors=True)

    def _call(self, fn, *args) -> concurrent.futures.Future:
        """``fn(core, *args)`` on the supervisor thread."""
        return self._reactor.call(fn, self._core, *args)
