"""Starting a run's main program: its environment (the ``protocol.ENV_*`` names), its argv
inside the run's cgroup, its socket and pipes; and the server-wide watchdog and subreaper."""
from __future__ import annotations

import ctypes
import errno
import logging
import os
import shutil
import socket
import subprocess
import time

from mpdash import lessons, protocol
from mpdash.cgroups import Cgroups
from mpdash.engine import limits, reaping, streams
from mpdash.engine.context import (ACCEPT, PIPE, Core, EngineBusy, LimitError, LiveRun,
                                   has_scratch, scratch_folder, stacks_folder)
from mpdash.paths import BOOT_DIR, PACKAGE_DIR, PROJECT_ROOT
from mpdash.state import Run

log = logging.getLogger(__name__)
PR_SET_CHILD_SUBREAPER = 36


def set_child_subreaper() -> bool:
    """Make the server the reaper of its runs' orphans (they stay visible and killable)."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0
    except Exception:
        return False


def run_env(core: Core, run: Run, sock_path: str) -> dict:
    """The main program's environment: the server's, plus how to reach it and be recognised.

    Only ``BOOT_DIR`` (which holds sitecustomize.py alone) joins the path: the folder that holds
    mpdash (a checkout, or the server's site-packages) would shadow the program's own packages
    under its own interpreter. sitecustomize loads the package from ``ENV_PACKAGE`` instead.
    """
    env = dict(os.environ)
    env.pop(protocol.ENV_STACKS, None)
    if core.stacks:
        env[protocol.ENV_STACKS] = stacks_folder(core, run.id)
    env.update({
        "PYTHONUNBUFFERED": "1",
        "PYTHONPATH": os.pathsep.join(
            [BOOT_DIR] + ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else [])),
        protocol.ENV_PACKAGE: PACKAGE_DIR,
        protocol.ENV_EVENTS: sock_path, protocol.ENV_SERVER_PID: str(core.server_pid),
        protocol.ENV_RUN_MAIN: "1", protocol.ENV_RUN_ID: run.id,
    })
    if has_scratch(core, run):
        env["TMPDIR"] = scratch_folder(core, run.id)
    env.update([core.marker.split("=", 1)])
    return env


def check_executable(program: str, path: str | None, cwd: str | None) -> None:
    """Raise what exec would, before the cgroup wrapper hides it as exit status 127."""
    if os.sep in program:
        full = os.path.join(cwd or os.getcwd(), program)
        if not os.path.exists(full):
            raise FileNotFoundError(errno.ENOENT, os.strerror(errno.ENOENT), program)
        if not os.access(full, os.X_OK) or os.path.isdir(full):
            raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), program)
    elif shutil.which(program, path=path) is None:
        raise FileNotFoundError(errno.ENOENT, os.strerror(errno.ENOENT), program)


def launch(core: Core, run: Run, argv: list[str], analyze, echo, stdio) -> Run:
    """On the loop's thread: check the limits, start the main program, watch it."""
    refused = limits.refusal(core.hub, run)
    if refused:
        raise LimitError(refused)
    sock_path = os.path.join(core.tmp, f"{run.id}.sock")
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    env = run_env(core, run, sock_path)
    try:
        listener.bind(sock_path)
        listener.listen(64)
        listener.setblocking(False)
        if protocol.ENV_STACKS in env:
            os.mkdir(env[protocol.ENV_STACKS], 0o700)   # each process writes <pid>.txt there
        if has_scratch(core, run):
            os.mkdir(env["TMPDIR"], 0o700)
    except OSError as exc:
        # e.g. a tmp cleaner removed the engine's folder under a long-lived server
        listener.close()
        try:
            os.unlink(sock_path)
        except OSError:
            pass
        shutil.rmtree(stacks_folder(core, run.id), ignore_errors=True)
        shutil.rmtree(scratch_folder(core, run.id), ignore_errors=True)
        raise EngineBusy(f"cannot prepare the run's socket: {exc.strerror or exc}") from None
    stdin, cwd = stdio if stdio else (subprocess.DEVNULL, None)
    cgroup = core.cgroups.create(run.id, limits.run_tasks(run, core.hub.limits))
    try:
        if cgroup is not None:   # the wrapper would only fail later, as exit status 127
            check_executable(argv[0], env.get("PATH"), cwd)
        popen = subprocess.Popen(Cgroups.wrap(cgroup, argv), env=env, stdin=stdin,
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                 process_group=0, close_fds=True, cwd=cwd)
    except OSError as exc:
        listener.close()
        os.unlink(sock_path)
        shutil.rmtree(stacks_folder(core, run.id), ignore_errors=True)
        shutil.rmtree(scratch_folder(core, run.id), ignore_errors=True)
        if cgroup is not None:
            core.cgroups.release(cgroup)
        raise lessons.ParamError(f"cannot start {argv[0]!r}: {exc.strerror}") from None
    # Only a watched program is made nicer: it may fill every core with dozens of workers and
    # starve the sampler watching it. A lesson stays at the server's priority, so the speedups
    # it measures compare with the machine's cores even while other programs run.
    if run.kind == "watch":
        lower_priority(popen.pid, core.hub.limits.run_nice)
    live = LiveRun(run=run, popen=popen, listener=listener, sock_path=sock_path,
                   analyze=analyze, echo=echo, cgroup=cgroup)
    if run.time_limit:
        live.deadline = time.monotonic() + run.time_limit
    run.main_pid = popen.pid
    core.groups.add(popen.pid)
    core.live[run.id] = live
    core.reactor.register(listener, ACCEPT, lambda l: streams.on_accept(core, live, l))
    for stream, pipe in ((protocol.STDOUT, popen.stdout), (protocol.STDERR, popen.stderr)):
        os.set_blocking(pipe.fileno(), False)
        live.pipes[pipe.fileno()] = (stream, pipe, protocol.LineBuffer())
        core.reactor.register(pipe, PIPE, lambda p: streams.on_pipe(core, live, p))
    core.hub.add_run(run)
    reaping.birth(core, live, popen.pid, ppid=core.server_pid, role="main", name="MainProcess")
    core.hub.set_state(run, "running")
    return run


def lower_priority(pid: int, nice: int) -> None:
    """Make the new main ``nice`` steps nicer (Limits.run_nice); everything it starts inherits it.
    Right after exec, before the program can start anything: Popen returns once exec is done
    and an interpreter's start-up alone takes tens of ms. Raising niceness needs no privilege."""
    if nice <= 0 or not hasattr(os, "setpriority"):
        return
    try:
        os.setpriority(os.PRIO_PROCESS, pid, min(19, os.getpriority(os.PRIO_PROCESS, pid) + nice))
    except OSError:   # already gone: its exit is seen as usual
        pass


def start_watchdog(python: str, marker: str, cgroups: Cgroups,
                   tmp: str) -> subprocess.Popen | None:
    """The dead-man switch (mpdash/watchdog.py): sweeps this engine's runs once the server
    is gone, however it went. Its own session, so a terminal's Ctrl-C does not reach it."""
    dirs = [d for d in (cgroups.v2_parent, cgroups.pids_parent) if d]
    try:
        return subprocess.Popen(
            [python, "-I", "-S", os.path.join(PACKAGE_DIR, "watchdog.py"), marker,
             "--tmp", tmp, *dirs],
            stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            start_new_session=True, close_fds=True)
    except OSError:
        log.exception("watchdog not started: a SIGKILLed server may leave processes")
        return None


def stop_watchdog(watchdog: subprocess.Popen | None) -> None:
    if watchdog is None:
        return
    try:
        watchdog.stdin.close()   # EOF: it sweeps (finds nothing) and exits
        watchdog.wait(timeout=3)
    except (OSError, subprocess.TimeoutExpired):
        watchdog.kill()
        watchdog.wait()
