"""A process's life in its run: ``install()``, role, parent death, births, exits, terminations.

The server starts each run with ``ENV_EVENTS`` (a Unix socket path) in the environment and
``mpdash/_boot`` on ``PYTHONPATH``, whose ``sitecustomize`` calls ``install()``: so the run's
main, its forked children and its spawned or forkserver children (fresh interpreters that load
``sitecustomize`` again) all report. This module holds THE one patch of multiprocessing's
``BaseProcess.start``/``_bootstrap`` and of its Popen classes, and the one after-fork handler
(which runs every reset registered in ``hooks``).
"""
from __future__ import annotations

import atexit
import os
import signal
import sys
import threading

from mpdash import protocol
from mpdash.inrun import budget, capture, channel, hooks, importhook, reaps, role, stacks


class _Life:
    __slots__ = ("installed", "server_pid", "prctl", "starting")

    def __init__(self):
        self.installed = False
        self.server_pid = 0
        self.prctl = None
        # Threads inside Process.start(): a fork made there is a multiprocessing worker, any
        # other fork a plain child. By thread id, which a forked child keeps (pthread_self).
        self.starting: set = set()


_life = _Life()


# ---------------------------------------------------------------------------- parent death

def _set_parent_death_signal() -> None:
    """Die with SIGKILL when the thread that forked us exits; then close the race with it.

    Not for multiprocessing's helpers: the resource tracker must outlive the main to unlink
    leaked shared memory, and both it and the forkserver exit by themselves once every process
    holding their pipe is gone — which the workers' own death signals guarantee.
    """
    if role.get() == role.HELPER or _life.prctl is None:
        return
    _life.prctl(1, int(signal.SIGKILL), 0, 0, 0)  # PR_SET_PDEATHSIG = 1
    # If the parent died before prctl took effect we were already re-parented: to the server
    # (its subreaper), to init, or to some other subreaper (systemd --user, a container's
    # init). Either way the death signal will never come: leave now. "Still our parent" is
    # judged by the run's marker in its environment, not by pid 1, which misses subreapers.
    parent = os.getppid()
    if role.is_main():
        if parent != _life.server_pid:
            os._exit(137)
    elif parent == 1 or parent == _life.server_pid or not _in_this_run(parent):
        os._exit(137)


def _load_prctl():
    """Looked up once at install: dlopen() in a child forked from a threaded parent can hang."""
    try:
        import ctypes
        return ctypes.CDLL(None, use_errno=True).prctl
    except Exception:
        return None


def _in_this_run(pid: int) -> bool:
    marker = os.environ.get(protocol.ENV_ENGINE)
    if not marker:
        return True   # an older server that sets no marker: keep the pid checks only
    try:
        with open(f"/proc/{pid}/environ", "rb") as f:
            return f"{protocol.ENV_ENGINE}={marker}".encode() in f.read().split(b"\0")
    except OSError:
        return False


# What the command line of an exec'd worker holds: multiprocessing's spawn (and forkserver's
# workers, forked from a helper, never exec), and loky's own launcher (joblib's workers).
_WORKER_MARKS = (b"--multiprocessing-fork", b"loky.backend.popen_loky")


def _role_from_cmdline() -> tuple[str, str | None]:
    """(role, helper name) of a process the server did not start itself."""
    cmdline = _own_cmdline()
    if cmdline is None:
        return role.WORKER, None
    for helper in (b"resource_tracker", b"forkserver"):
        if helper in cmdline:
            return role.HELPER, helper.decode()
    if any(mark in cmdline for mark in _WORKER_MARKS):
        return role.WORKER, None
    return role.CHILD, None


def _after_fork_in_child() -> None:
    # Still the parent's memory here: forked inside Process.start(), or by the forkserver
    # (which forks only workers), it is multiprocessing's; any other fork is a plain child.
    ours = threading.get_ident() in _life.starting or role.get() == role.HELPER
    _life.starting = set()
    role.current.name, role.current.helper = (role.WORKER if ours else role.CHILD), None
    hooks.run_after_fork_in_child()
    _set_parent_death_signal()
    hello = {"role": role.get(), "ppid": os.getppid(), "via": "fork"}
    if not ours:
        # A plain fork says what it runs: a short-lived one is often reaped before the server
        # reads its hello, and a reaped process's /proc/<pid>/cmdline is gone. The raw
        # arguments, a file read: no import may happen here (another thread of the parent
        # may have held an import lock at the fork); the server spells them.
        hello["argv"] = _own_argv()
    channel.send(protocol.HELLO, **hello)


def _own_cmdline() -> bytes | None:
    try:
        with open("/proc/self/cmdline", "rb") as f:
            return f.read()
    except OSError:
        return None


def _own_argv() -> list[str] | None:
    """This process's command line as /proc has it (the server's own read of a child)."""
    args = (_own_cmdline() or b"").split(b"\0")
    if args and args[-1] == b"":
        args.pop()
    return [a.decode(errors="replace") for a in args] or None


# ---------------------------------------------------------------------------- multiprocessing

def _patch_multiprocessing() -> None:
    """Births, exits, terminate() calls, and pausing that follows a child, from multiprocessing."""
    from multiprocessing import popen_fork, process

    def method_of(proc) -> str | None:
        popen = getattr(proc, "_popen", None)
        return getattr(popen, "method", None)

    original_start = process.BaseProcess.start

    def start(self):
        # A child started inside budget.paused() stays paused, whatever the start method:
        # the attribute travels in the pickled Process under spawn.
        self._mpdash_paused = budget.is_paused()
        me = threading.get_ident()
        _life.starting.add(me)
        try:
            original_start(self)
        finally:
            _life.starting.discard(me)
        channel.send(protocol.SPAWNED, child=self.pid, name=self.name, daemon=bool(self.daemon),
                     method=method_of(self))

    original_bootstrap = process.BaseProcess._bootstrap

    def _bootstrap(self, *args, **kwargs):
        if getattr(self, "_mpdash_paused", False):
            budget.state.paused = True
        channel.send(protocol.CHILD, name=self.name, daemon=bool(self.daemon))
        try:
            code = original_bootstrap(self, *args, **kwargs)
        finally:
            budget.flush()   # children leave through os._exit: atexit would not run
        # The code the process is about to exit with; signals and os._exit() are seen by the
        # parent (poll below) or the server (waitid) instead.
        channel.send(protocol.EXITING, code=code)
        return code

    # Patched on the Popen, not on Process: Process.terminate() calls it, and so does
    # multiprocessing's exit hook, which ends daemonic children with p._popen.terminate().
    def terminating(original, sig):
        def wrapper(self):
            if self.returncode is None:
                channel.send(protocol.TERMINATE, child=self.pid, sig=sig)
            return original(self)
        return wrapper

    # A forked child's code is reported by os.waitpid (see reaps); a forkserver child is
    # reaped by the forkserver, which tells its parent the code through a pipe.
    def reporting_poll(original):
        def poll(self, *args, **kwargs):
            before = self.returncode
            code = original(self, *args, **kwargs)
            if before is None and code is not None:
                channel.send(protocol.REAPED, child=self.pid, code=code)
            return code
        return poll

    process.BaseProcess.start = start
    process.BaseProcess._bootstrap = _bootstrap
    popen_fork.Popen.terminate = terminating(popen_fork.Popen.terminate, int(signal.SIGTERM))
    popen_fork.Popen.kill = terminating(popen_fork.Popen.kill, int(signal.SIGKILL))
    try:
        from multiprocessing import popen_forkserver
        popen_forkserver.Popen.poll = reporting_poll(popen_forkserver.Popen.poll)
    except ImportError:
        pass


# ---------------------------------------------------------------------------- installing

def interpreter() -> dict:
    """The interpreter this process runs on, as the Run's ``python`` field shows it."""
    from multiprocessing import context
    # The platform's default, read without choosing it: get_start_method() would fix the
    # context for good and make the program's own set_start_method() fail.
    default = getattr(getattr(context._default_context, "_default_context", None), "_name", None)
    is_gil_enabled = getattr(sys, "_is_gil_enabled", None)   # 3.13+; before, always a GIL
    return {"version": sys.version.split()[0], "executable": sys.executable,
            "gil_enabled": bool(is_gil_enabled()) if is_gil_enabled else True,
            "default_start_method": default}


# What else runs in every process of a run, installed in this order once the channel is open
# and before the process says hello. A new feature module adds its ``install`` here; what it
# must reset in a forked child it registers with ``hooks.after_fork_in_child``.
FEATURES = (reaps.patch_os, importhook.install_tracing, stacks.install)


def _install_features() -> None:
    for install_feature in FEATURES:
        try:
            install_feature()
        except Exception as exc:   # a feature must never break the program it watches
            sys.__stderr__.write(f"mpdash: {install_feature.__module__} not installed: {exc!r}\n")


def install() -> bool:
    """Hook this process into its run. Idempotent; returns False when not inside a run."""
    if _life.installed:
        return True
    addr = os.environ.get(protocol.ENV_EVENTS)
    if not addr:
        return False
    _life.installed = True
    channel.open_to(addr)
    _life.server_pid = int(os.environ.get(protocol.ENV_SERVER_PID, "0") or 0)
    # The server marks its direct child; children must not inherit the mark. A process that has
    # the mark but another parent (e.g. python started by a shell the user asked us to run) is
    # a worker of that run.
    marked = os.environ.pop(protocol.ENV_RUN_MAIN, None) == "1"
    if marked and os.getppid() == _life.server_pid:
        role.current.name, role.current.helper = role.MAIN, None
    else:
        role.current.name, role.current.helper = _role_from_cmdline()
    _life.prctl = _load_prctl()
    _set_parent_death_signal()
    capture.install()
    os.register_at_fork(after_in_child=_after_fork_in_child)
    _patch_multiprocessing()
    _install_features()
    atexit.register(budget.flush)
    hello = {"role": role.get(), "ppid": os.getppid(), "via": "exec"}
    if role.current.helper:
        hello["name"] = role.current.helper
    if role.is_main():
        hello["python"] = interpreter()
    channel.send(protocol.HELLO, **hello)
    return True
