"""The in-run side of mpdash: installed in every process of a run, whatever its start method.

The server starts each run with ``MPDASH_EVENTS`` (a Unix socket path) in the environment and
``mpdash/_boot`` on ``PYTHONPATH``, whose ``sitecustomize`` calls ``install()``: so the run's
main, its forked children and its spawned or forkserver children (fresh interpreters that load
``sitecustomize`` again) all report here.

Why one stream connection per process: each process (a fork notices its new pid) opens its own
connection, so messages of two processes never interleave, no lock is shared across a fork, and
there is no feeder thread (a ``multiprocessing.Queue`` here hung children in the spike). Unix
datagrams were the other candidate, but Linux queues only ``max_dgram_qlen`` (10 here) of them
before a sender blocks, which stalls any process that prints in bursts.

Messages are JSON objects with ``k`` (kind), ``pid`` and ``t``; see ``docs/API.md`` ("probe").
"""
from __future__ import annotations

import itertools
import json
import reprlib
import os
import signal
import socket
import sys
import threading
import time

from mpdash.inrun import stacks

ENV_SOCKET = "MPDASH_EVENTS"
ENV_SERVER_PID = "MPDASH_SERVER_PID"
ENV_MAIN = "MPDASH_RUN_MAIN"
ENV_RUN = "MPDASH_RUN_ID"

MAX_LINE = 4000        # characters of one printed line kept; the rest is cut with a marker
MAX_DETAIL = 200       # characters of an event's repr

_addr: str | None = None
_conn: socket.socket | None = None
_conn_pid = 0
_send_lock = threading.RLock()
_sending = False          # inside send()'s write, to spot a signal handler's reentry
_deferred: list = []      # what such a handler sent, written once the interrupted send is done
_role = "worker"
_server_pid = 0
_installed = False
_parent_before_fork = 0
_helper_name: str | None = None
_prctl = None


# ---------------------------------------------------------------------------- sending

def enabled() -> bool:
    return _addr is not None


def send(msg: dict) -> None:
    """Send one message to the server; silently nothing when not in a run or the server is gone."""
    global _conn, _conn_pid, _send_lock, _sending
    if _addr is None:
        return
    pid = os.getpid()
    msg.setdefault("pid", pid)
    msg.setdefault("t", time.time())
    try:
        data = (json.dumps(msg, separators=(",", ":"), default=repr) + "\n").encode("utf-8", "replace")
    except (ValueError, TypeError):
        return
    if _conn_pid != pid:
        # First message of this process, or we are a fresh fork holding our parent's
        # connection (and maybe its lock, taken by another thread at fork time): start anew.
        inherited, _conn, _conn_pid, _send_lock = _conn, None, pid, threading.RLock()
        _sending = False
        _deferred.clear()  # a parent's, deferred when it forked
        if inherited is not None:
            try:
                inherited.close()  # our copy only: the parent's connection stays open
            except OSError:
                pass
    # Reentrant: a signal handler runs in the thread it interrupts, maybe inside this block;
    # it must neither wait for itself nor write into the middle of a line being written.
    with _send_lock:
        if _sending:
            _deferred.append(data)   # goes out right after the interrupted send
            return
        _sending = True
        try:
            if _conn is None:
                conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                conn.set_inheritable(False)
                conn.connect(_addr)
                _conn = conn
            _conn.sendall(data)
            while _deferred:
                _conn.sendall(_deferred.pop(0))
        except OSError:
            _conn = None  # the server went away: the run is being torn down
            _deferred.clear()
        finally:
            _sending = False


class _ShortRepr(reprlib.Repr):
    """Builds no more text than an event can show: a full repr of a big list put on a queue
    would cost the program as much time and memory as pickling it again."""

    def __init__(self):
        super().__init__()
        self.maxlevel = 4
        self.maxtuple = self.maxlist = self.maxarray = self.maxdict = 64
        self.maxset = self.maxfrozenset = self.maxdeque = 64
        self.maxstring = self.maxlong = self.maxother = MAX_DETAIL

    def repr_bytes(self, value, level):
        return repr(value[:MAX_DETAIL]) + ("…" if len(value) > MAX_DETAIL else "")

    repr_bytearray = repr_bytes

    def repr_dict(self, value, level):
        # reprlib sorts keys; the program would print them in insertion order
        if not value:
            return "{}"
        if level <= 0:
            return "{...}"
        items = [f"{self.repr1(k, level - 1)}: {self.repr1(v, level - 1)}"
                 for k, v in itertools.islice(value.items(), self.maxdict)]
        return "{" + ", ".join(items) + (", ..." if len(value) > self.maxdict else "") + "}"


_short = _ShortRepr()


def short_repr(value) -> str:
    try:
        text = _short.repr(value)
    except Exception:
        text = f"<{type(value).__name__}>"
    return text if len(text) <= MAX_DETAIL else text[: MAX_DETAIL - 1] + "…"


# ---------------------------------------------------------------------------- output

class LineWriter:
    """Stands in for sys.stdout/sys.stderr: sends each complete line, tagged with this pid.

    Prints of two processes never interleave mid-line this way (a pipe shared by all of them
    would: ``print`` writes the text and the newline separately).
    """

    def __init__(self, stream: str, original):
        self.stream = stream
        self.original = original
        self._buf = ""
        self._lock = threading.Lock()
        self.encoding = "utf-8"
        self.errors = "replace"

    def write(self, text) -> int:
        if not isinstance(text, str):
            raise TypeError(f"write() argument must be str, not {type(text).__name__}")
        with self._lock:
            self._buf += text
            if "\n" in self._buf:
                *lines, self._buf = self._buf.split("\n")
                for line in lines:
                    self._send(line)
        return len(text)

    def _send(self, line: str) -> None:
        if len(line) > MAX_LINE:
            line = line[:MAX_LINE] + f"… [{len(line) - MAX_LINE} more characters]"
        send({"k": "out", "s": self.stream, "x": line})

    def flush(self) -> None:
        with self._lock:
            if self._buf:
                line, self._buf = self._buf, ""
                self._send(line)

    def reset_after_fork(self) -> None:
        # The parent's half-written line belongs to the parent; and its lock may be held.
        self._lock = threading.Lock()
        self._buf = ""

    # What code that pokes at sys.stdout expects to find.
    def fileno(self) -> int:
        return self.original.fileno()

    @property
    def buffer(self):
        return self.original.buffer

    def isatty(self) -> bool:
        return False

    def writable(self) -> bool:
        return True

    def readable(self) -> bool:
        return False

    def writelines(self, lines) -> None:
        for line in lines:
            self.write(line)

    @property
    def closed(self) -> bool:
        return False

    def close(self) -> None:
        self.flush()


# ---------------------------------------------------------------------------- lifetime

def _set_parent_death_signal() -> None:
    """Die with SIGKILL when the thread that forked us exits; then close the race with it.

    Not for multiprocessing's helpers: the resource tracker must outlive the main to unlink
    leaked shared memory, and both it and the forkserver exit by themselves once every process
    holding their pipe is gone — which the workers' own death signals guarantee.
    """
    if _role == "helper" or _prctl is None:
        return
    _prctl(1, int(signal.SIGKILL), 0, 0, 0)  # PR_SET_PDEATHSIG = 1
    # If the parent died before prctl took effect we were already re-parented: to the server
    # (its subreaper), to init, or to some other subreaper (systemd --user, a container's
    # init). Either way the death signal will never come: leave now. "Still our parent" is
    # judged by the run's marker in its environment, not by pid 1, which misses subreapers.
    parent = os.getppid()
    if _role == "main":
        if parent != _server_pid:
            os._exit(137)
    elif parent == 1 or parent == _server_pid or not _in_this_run(parent):
        os._exit(137)


def _load_prctl():
    """Looked up once at install: dlopen() in a child forked from a threaded parent can hang."""
    try:
        import ctypes
        return ctypes.CDLL(None, use_errno=True).prctl
    except Exception:
        return None


def _in_this_run(pid: int) -> bool:
    marker = os.environ.get("MPDASH_ENGINE")
    if not marker:
        return True   # an older server that sets no marker: keep the pid checks only
    try:
        with open(f"/proc/{pid}/environ", "rb") as f:
            return f"MPDASH_ENGINE={marker}".encode() in f.read().split(b"\0")
    except OSError:
        return False


def _role_from_cmdline() -> str:
    try:
        with open("/proc/self/cmdline", "rb") as f:
            cmdline = f.read()
    except OSError:
        return "worker"
    for helper in (b"resource_tracker", b"forkserver"):
        if helper in cmdline:
            global _helper_name
            _helper_name = helper.decode()
            return "helper"
    return "worker"


def _before_fork() -> None:
    global _parent_before_fork
    _parent_before_fork = os.getpid()


def _after_fork_in_child() -> None:
    global _role
    _role = "worker"
    stacks.after_fork_in_child()   # before the hello: once the server knows us, we answer
    for stream in (sys.stdout, sys.stderr):
        if isinstance(stream, LineWriter):
            stream.reset_after_fork()
    _set_parent_death_signal()
    send({"k": "hello", "role": _role, "ppid": os.getppid(), "via": "fork"})


def _patch_multiprocessing() -> None:
    """Births, exits and terminate() calls, seen from inside multiprocessing."""
    from multiprocessing import popen_fork, process

    def method_of(proc) -> str | None:
        popen = getattr(proc, "_popen", None)
        return getattr(popen, "method", None)

    original_start = process.BaseProcess.start

    def start(self):
        original_start(self)
        send({"k": "spawned", "child": self.pid, "name": self.name, "daemon": bool(self.daemon),
              "method": method_of(self)})

    original_bootstrap = process.BaseProcess._bootstrap

    def _bootstrap(self, parent_sentinel=None):
        send({"k": "child", "name": self.name, "daemon": bool(self.daemon)})
        code = original_bootstrap(self, parent_sentinel)
        # The code the process is about to exit with; signals and os._exit() are seen by the
        # parent (poll below) or the server (waitid) instead.
        send({"k": "exiting", "code": code})
        return code

    # Patched on the Popen, not on Process: Process.terminate() calls it, and so does
    # multiprocessing's exit hook, which ends daemonic children with p._popen.terminate().
    def terminating(original, sig):
        def wrapper(self):
            if self.returncode is None:
                send({"k": "terminate", "child": self.pid, "sig": sig})
            return original(self)
        return wrapper

    def reporting_poll(original):
        def poll(self, *args, **kwargs):
            before = self.returncode
            code = original(self, *args, **kwargs)
            if before is None and code is not None:
                send({"k": "reaped", "child": self.pid, "code": code})
            return code
        return poll

    process.BaseProcess.start = start
    process.BaseProcess._bootstrap = _bootstrap
    popen_fork.Popen.terminate = terminating(popen_fork.Popen.terminate, int(signal.SIGTERM))
    popen_fork.Popen.kill = terminating(popen_fork.Popen.kill, int(signal.SIGKILL))
    popen_fork.Popen.poll = reporting_poll(popen_fork.Popen.poll)
    try:
        from multiprocessing import popen_forkserver
        popen_forkserver.Popen.poll = reporting_poll(popen_forkserver.Popen.poll)
    except ImportError:
        pass


def install() -> bool:
    """Hook this process into its run. Idempotent; returns False when not inside a run."""
    global _addr, _role, _server_pid, _installed, _prctl
    if _installed:
        return True
    addr = os.environ.get(ENV_SOCKET)
    if not addr:
        return False
    _installed = True
    _addr = addr
    _server_pid = int(os.environ.get(ENV_SERVER_PID, "0") or 0)
    # The server marks its direct child; children must not inherit the mark. A process that has
    # the mark but another parent (e.g. python started by a shell the user asked us to run) is
    # a worker of that run.
    marked = os.environ.pop(ENV_MAIN, None) == "1"
    _role = "main" if marked and os.getppid() == _server_pid else _role_from_cmdline()
    _prctl = _load_prctl()
    _set_parent_death_signal()
    sys.stdout = LineWriter("out", sys.stdout)
    sys.stderr = LineWriter("err", sys.stderr)
    os.register_at_fork(before=_before_fork, after_in_child=_after_fork_in_child)
    _patch_multiprocessing()
    stacks.install()
    try:
        from mpdash import tracing
        tracing.install()
    except ImportError:
        pass
    hello = {"k": "hello", "role": _role, "ppid": os.getppid(), "via": "exec"}
    if _helper_name:
        hello["name"] = _helper_name
    send(hello)
    return True


def role() -> str:
    return _role
