"""Run lifecycle: start a run as its own main program, watch it, stop it, leave nothing behind.

One long-lived *supervisor* thread does all of it, for every run:
- it forks the run processes (``PR_SET_PDEATHSIG`` fires when the *thread* that forked a child
  exits, so that thread must live as long as the server);
- it reads each run's probe connections (births, exits, output, events) and raw stdout/stderr;
- it holds a pidfd per process, so an exit is seen the instant it happens, not at a poll;
- it enforces the time limit and finishes Stop (SIGTERM the group, SIGKILL after a grace).

Other threads talk to it through ``_call`` (a queue plus a wake-up pipe) and read ``Hub``.
The server is a child subreaper, so a run's orphans become its children and are reaped here.
"""
from __future__ import annotations

import concurrent.futures
import ctypes
import errno
import json
import logging
import os
import queue
import selectors
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable

from mpdash import lessons
from mpdash.cgroups import Cgroups, RunCgroup
from mpdash.state import Hub, Run, new_run_id

__all__ = ["Engine", "LimitError", "BOOT_DIR", "PROJECT_ROOT"]

log = logging.getLogger(__name__)

PROJECT_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BOOT_DIR = os.path.join(PROJECT_ROOT, "mpdash", "_boot")
PR_SET_CHILD_SUBREAPER = 36
DISCOVERY_PERIOD = 0.5      # s between scans for children the probe cannot report
LEFTOVER_GRACE = 0.5        # s after the main's exit before what is left of the run is killed
FINALIZE_GRACE = 1.0        # s more to collect the last exits and output before the run ends
# Order in which ready fds are handled in one wake-up: what a process said before it died
# (its exit code, a terminate() call) must be read before its pidfd reports the death.
_PRIORITY = {"wake": 0, "accept": 1, "conn": 2, "pipe": 3, "pidfd": 4}


class LimitError(RuntimeError):
    """A start refused because a limit is already reached (HTTP 429)."""


def _set_child_subreaper() -> bool:
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0
    except Exception:
        return False


def _decode_wait(info) -> int:
    """waitid result -> the exit code as multiprocessing reports it (negative = signal)."""
    if info.si_code == os.CLD_EXITED:
        return info.si_status
    return -info.si_status


def _read_proc_stat(pid: int) -> tuple[str, int, int] | None:
    """(state letter, ppid, pgid) of a pid, or None when it is gone."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            data = f.read()
    except OSError:
        return None
    fields = data[data.rfind(b")") + 2:].split()
    return fields[0].decode(), int(fields[1]), int(fields[2])


def _check_executable(program: str, path: str | None, cwd: str | None) -> None:
    if os.sep in program:
        full = os.path.join(cwd or os.getcwd(), program)
        if not os.path.exists(full):
            raise FileNotFoundError(errno.ENOENT, os.strerror(errno.ENOENT), program)
        if not os.access(full, os.X_OK) or os.path.isdir(full):
            raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), program)
    elif shutil.which(program, path=path) is None:
        raise FileNotFoundError(errno.ENOENT, os.strerror(errno.ENOENT), program)


def _run_of(pid: int, marker: str) -> str | None:
    """The run id in a process's environment, if it belongs to this engine's runs."""
    try:
        with open(f"/proc/{pid}/environ", "rb") as f:
            env = f.read().split(b"\0")
    except OSError:
        return None
    if marker.encode() not in env:
        return None
    for item in env:
        if item.startswith(b"MPDASH_RUN_ID="):
            return item[len(b"MPDASH_RUN_ID="):].decode(errors="replace")
    return None


def _children_of(pid: int) -> set[int]:
    found: set[int] = set()
    try:
        for tid in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{tid}/children") as f:
                found.update(int(c) for c in f.read().split())
    except OSError:
        pass
    return found


@dataclass
class _Live:
    """What the supervisor holds for a run while it is live."""
    run: Run
    popen: subprocess.Popen
    listener: socket.socket
    sock_path: str
    analyze: Callable | None
    echo: Callable[[str, str], None] | None
    conns: dict = field(default_factory=dict)        # fileno -> (socket, bytearray)
    pidfds: dict = field(default_factory=dict)       # pid -> fd
    codes: dict = field(default_factory=dict)        # pid -> exit code reported by the run
    pipes: dict = field(default_factory=dict)        # fileno -> [stream, file, bytearray]
    deadline: float | None = None                    # time limit
    kill_at: float | None = None                     # SIGKILL after the SIGTERM grace
    main_exited_at: float | None = None
    waiters: list = field(default_factory=list)      # futures resolved when the run ends
    killed: set = field(default_factory=set)         # pids the server itself SIGKILLed
    cgroup: RunCgroup | None = None                  # None: process group only (fallback)


class Engine:
    """Starts, watches and stops runs; owns the supervisor thread."""

    def __init__(self, hub: Hub, python: str = sys.executable, on_birth: Callable | None = None,
                 on_death: Callable | None = None, cgroups: bool = True,
                 on_finish: Callable | None = None):
        self.hub = hub
        self.python = python
        self.on_birth = on_birth or (lambda run, pid: None)
        # Called the instant an exit is seen, before anyone reaps (the sampler's last reading).
        self.on_death = on_death or (lambda run, pid: None)
        self.on_finish = on_finish or (lambda run: None)   # last chance to add to a live run
        self.server_pid = os.getpid()
        self.subreaper = _set_child_subreaper()
        self._tmp = tempfile.mkdtemp(prefix="mpdash-")
        os.chmod(self._tmp, 0o700)
        # Every process of every run carries this in its environment: how the watchdog (and
        # orphan discovery) tell this engine's processes from anyone else's.
        self.marker = f"MPDASH_ENGINE={os.path.basename(self._tmp)}"
        self.cgroups = Cgroups(enabled=cgroups)
        self._watchdog = self._start_watchdog()
        self._sel = selectors.DefaultSelector()
        self._requests: queue.SimpleQueue = queue.SimpleQueue()
        self._wake_r, self._wake_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        self._sel.register(self._wake_r, selectors.EVENT_READ, ("wake", None))
        self._live: dict[str, _Live] = {}
        # False: runs start without the in-run stacks half (benchmarks measure what it costs)
        self.stacks_enabled = True
        self._closing = False
        self._next_discovery = 0.0
        self._groups: set[int] = set()      # every run's process group, for reaping strays
        self._strays_until = 0.0            # keep reaping until then after a run ends
        self._thread = threading.Thread(target=self._loop, name="mpdash-supervisor", daemon=True)
        self._thread.start()

    # =========================================================================== public API
    def start_lesson(self, lesson_id: Any, params: Any = None) -> Run:
        """Validate, check limits, start. Raises ParamError (400) or LimitError (429)."""
        lesson = lessons.get(lesson_id)
        values = lessons.validate_params(lesson, params)
        argv = [self.python, "-m", "mpdash.harness", lesson.module, json.dumps(values)]
        run = Run(id=new_run_id(), lesson=lesson.id, title=lesson.title, params=values,
                  time_limit=self.hub.limits.run_seconds)
        return self._launched(self._call(self._launch, run, argv, lesson.analyze, None, None))

    def start_command(self, argv: list[str], title: str | None = None,
                      timeout: float | None = None, echo: Callable | None = None,
                      stdin: Any = subprocess.DEVNULL, cwd: str | None = None) -> Run:
        """Run a user's own program as a run (``mpdash watch``)."""
        if not argv or not all(isinstance(a, str) for a in argv):
            raise lessons.ParamError("command must be a non-empty list of strings")
        run = Run(id=new_run_id(), lesson="watch", title=title or " ".join(argv)[:120],
                  params={}, kind="watch", command=list(argv), time_limit=timeout)
        return self._launched(self._call(self._launch, run, list(argv), None, echo, (stdin, cwd)))

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
        done = self._call(self._request_stop, run_id, reason, True).result(timeout=5)
        if done is not None:
            try:
                done.result(timeout=wait)
            except concurrent.futures.TimeoutError:
                log.warning("run %s still had processes %.1f s after Stop", run_id, wait)
        return run

    def request_stop(self, run_id: str, reason: str) -> None:
        """Ask for a stop without waiting (used by the sampler for the memory limit)."""
        self._call(self._request_stop, run_id, reason, False)

    def wait(self, run_id: str, timeout: float | None = None) -> Run | None:
        """Block until the run has ended (for the CLI and tests)."""
        fut = self._call(self._waiter, run_id).result(timeout=5)
        if fut is not None:
            fut.result(timeout=timeout)
        return self.hub.get(run_id)

    def stacks_folder(self, run_id: str) -> str:
        """Where the processes of a run write their stack dumps (mpdash/stacks.py)."""
        return os.path.join(self._tmp, f"{run_id}.stacks")

    def live_pids(self) -> dict[str, list[int]]:
        with self.hub.lock:
            return {r.id: r.live_pids() for r in self.hub.runs.values() if r.live}

    def shutdown(self, timeout: float = 2.0) -> None:
        """Kill every run at once (server exit), wait for their processes, stop the thread."""
        if self._closing:
            return
        try:
            self._call(self._kill_all).result(timeout=timeout)
            deadline = time.monotonic() + timeout
            while self._live and time.monotonic() < deadline:
                time.sleep(0.01)
            # Killed strays of the last runs may still be turning into zombies: reap them.
            for _ in range(5):
                self._call(self._reap_strays).result(timeout=timeout)
                time.sleep(0.02)
        except Exception:
            log.exception("shutdown")
        finally:
            self._closing = True
            self._wake()
            self._thread.join(timeout=timeout)
            self.cgroups.close()
            self._stop_watchdog()
            shutil.rmtree(self._tmp, ignore_errors=True)

    def _start_watchdog(self) -> subprocess.Popen | None:
        """The dead-man switch (mpdash/watchdog.py): sweeps this engine's runs once the server
        is gone, however it went. Its own session, so a terminal's Ctrl-C does not reach it."""
        cgroups = [d for d in (self.cgroups.v2_parent, self.cgroups.pids_parent) if d]
        try:
            return subprocess.Popen(
                [self.python, "-I", "-S", os.path.join(PROJECT_ROOT, "mpdash", "watchdog.py"),
                 self.marker, *cgroups],
                stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                start_new_session=True, close_fds=True)
        except OSError:
            log.exception("watchdog not started: a SIGKILLed server may leave processes")
            return None

    def _stop_watchdog(self) -> None:
        if self._watchdog is None:
            return
        try:
            self._watchdog.stdin.close()   # EOF: it sweeps (finds nothing) and exits
            self._watchdog.wait(timeout=3)
        except (OSError, subprocess.TimeoutExpired):
            self._watchdog.kill()
            self._watchdog.wait()
        self._watchdog = None

    # ====================================================================== supervisor thread
    def _call(self, fn, *args) -> concurrent.futures.Future:
        fut: concurrent.futures.Future = concurrent.futures.Future()
        if threading.current_thread() is self._thread:
            self._run_request(fn, args, fut)
        else:
            if self._closing:
                raise RuntimeError("engine is shut down")
            self._requests.put((fn, args, fut))
            self._wake()
        return fut

    def _wake(self) -> None:
        try:
            os.write(self._wake_w, b"x")
        except OSError:
            pass

    @staticmethod
    def _run_request(fn, args, fut) -> None:
        if not fut.set_running_or_notify_cancel():
            return   # the caller gave up waiting and cancelled it: do nothing
        try:
            fut.set_result(fn(*args))
        except BaseException as exc:
            fut.set_exception(exc)

    def _loop(self) -> None:
        while not (self._closing and not self._live):
            try:
                ready = self._sel.select(self._next_timeout())
                ready.sort(key=lambda item: _PRIORITY[item[0].data[0]])
                for key, _ in ready:
                    kind, data = key.data
                    if not self._stale(kind, key.fileobj, data):
                        getattr(self, f"_on_{kind}")(key.fileobj, data)
                self._on_timers()
            except Exception:  # the supervisor must never die: every run depends on it
                log.exception("supervisor loop")
                time.sleep(0.01)
        for key in list(self._sel.get_map().values()):
            self._sel.unregister(key.fileobj)
        os.close(self._wake_r)
        os.close(self._wake_w)

    def _stale(self, kind: str, fileobj, data) -> bool:
        """True when an earlier handler of this same wake-up already closed what is ready."""
        if kind == "wake":
            return False
        live = data[0] if kind == "pidfd" else data
        if self._live.get(live.run.id) is not live:
            return True
        if kind == "pidfd":
            return data[1] not in live.pidfds
        if kind == "conn":
            return fileobj.fileno() not in live.conns
        if kind == "pipe":
            return fileobj.closed
        return fileobj.fileno() < 0

    def _next_timeout(self) -> float:
        now = time.monotonic()
        times = [self._next_discovery] if self._live or now < self._strays_until else []
        for live in self._live.values():
            times += [t for t in (live.deadline, live.kill_at) if t is not None]
            if live.main_exited_at is not None:
                times.append(live.main_exited_at + 0.05)
        return max(0.0, min(times) - now) if times else 1.0

    # -- launching ---------------------------------------------------------------------------
    def _launch(self, run: Run, argv: list[str], analyze, echo, stdio) -> Run:
        limits = self.hub.limits
        if len(self.hub.live_runs()) >= limits.max_runs:
            raise LimitError(f"limit reached: at most {limits.max_runs} runs at once")
        if self.hub.live_process_count() >= limits.max_processes:
            raise LimitError(f"limit reached: at most {limits.max_processes} live processes")
        sock_path = os.path.join(self._tmp, f"{run.id}.sock")
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        listener.bind(sock_path)
        listener.listen(64)
        listener.setblocking(False)
        stacks_folder = self.stacks_folder(run.id)
        env = dict(os.environ)
        env.pop("MPDASH_STACKS", None)
        if self.stacks_enabled:
            os.mkdir(stacks_folder, 0o700)   # each Python process of the run dumps its stacks here
            env["MPDASH_STACKS"] = stacks_folder
        env.update({
            "PYTHONUNBUFFERED": "1",
            "PYTHONPATH": os.pathsep.join(
                [BOOT_DIR, PROJECT_ROOT] + ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else [])),
            "MPDASH_EVENTS": sock_path, "MPDASH_SERVER_PID": str(self.server_pid),
            "MPDASH_RUN_MAIN": "1", "MPDASH_RUN_ID": run.id,
        })
        env.update([self.marker.split("=", 1)])
        stdin, cwd = stdio if stdio else (subprocess.DEVNULL, None)
        cgroup = self.cgroups.create(run.id, limits.run_tasks)
        try:
            if cgroup is not None:   # the wrapper would only fail later, as exit status 127
                _check_executable(argv[0], env.get("PATH"), cwd)
            popen = subprocess.Popen(Cgroups.wrap(cgroup, argv), env=env, stdin=stdin, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, process_group=0, close_fds=True,
                                     cwd=cwd)
        except OSError as exc:
            listener.close()
            os.unlink(sock_path)
            shutil.rmtree(stacks_folder, ignore_errors=True)
            if cgroup is not None:
                self.cgroups.release(cgroup)
            raise lessons.ParamError(f"cannot start {argv[0]!r}: {exc.strerror}") from None
        live = _Live(run=run, popen=popen, listener=listener, sock_path=sock_path,
                     analyze=analyze, echo=echo, cgroup=cgroup)
        if run.time_limit:
            live.deadline = time.monotonic() + run.time_limit
        run.main_pid = popen.pid
        self._groups.add(popen.pid)
        self._live[run.id] = live
        self._sel.register(listener, selectors.EVENT_READ, ("accept", live))
        for stream, pipe in (("out", popen.stdout), ("err", popen.stderr)):
            os.set_blocking(pipe.fileno(), False)
            live.pipes[pipe.fileno()] = [stream, pipe, bytearray()]
            self._sel.register(pipe, selectors.EVENT_READ, ("pipe", live))
        self.hub.add_run(run)
        self._birth(live, popen.pid, ppid=self.server_pid, role="main", name="MainProcess")
        self.hub.set_state(run, "running")
        return run

    # -- probe connections -------------------------------------------------------------------
    def _on_wake(self, fd, _):
        try:
            while os.read(fd, 4096):
                pass
        except BlockingIOError:
            pass
        while True:
            try:
                fn, args, fut = self._requests.get_nowait()
            except queue.Empty:
                return
            self._run_request(fn, args, fut)

    def _on_accept(self, listener, live: _Live):
        while True:
            try:
                conn, _ = listener.accept()
            except (BlockingIOError, OSError):
                return
            conn.setblocking(False)
            live.conns[conn.fileno()] = (conn, bytearray())
            self._sel.register(conn, selectors.EVENT_READ, ("conn", live))

    def _on_conn(self, conn, live: _Live):
        _, buf = live.conns[conn.fileno()]
        closed = False
        while True:
            try:
                chunk = conn.recv(65536)
            except BlockingIOError:
                break
            except OSError:
                chunk = b""
            if not chunk:
                closed = True
                break
            buf += chunk
        if b"\n" in buf:
            *lines, rest = bytes(buf).split(b"\n")
            buf[:] = rest
            for line in lines:
                try:
                    msg = json.loads(line)
                except ValueError:
                    continue
                if isinstance(msg, dict):
                    try:
                        self._on_message(live, msg)
                    except Exception:
                        log.exception("bad probe message %r", line[:200])
        if closed:
            self._sel.unregister(conn)
            del live.conns[conn.fileno()]
            conn.close()

    def _on_message(self, live: _Live, msg: dict) -> None:
        run, hub, kind = live.run, self.hub, msg.get("k")
        pid, t = int(msg.get("pid", 0)), float(msg.get("t") or time.time())
        if kind == "out":
            self._output(live, pid, msg.get("s", "out"), str(msg.get("x", "")), t)
        elif kind == "hello":
            role = msg.get("role", "worker")
            if pid in run.processes:
                # The process's own word on its parent wins: under forkserver the parent is
                # the forkserver, not the process that called start().
                proc = run.processes[pid]
                fields = {"ppid": msg.get("ppid", proc["ppid"])}
                if proc["role"] != "main":
                    fields["role"] = role
                if msg.get("name"):
                    fields["name"] = msg["name"]
                if any(proc[k] != v for k, v in fields.items()):
                    hub.publish_proc(run, hub.upsert_process(run, pid, **fields), "update")
            else:
                self._birth(live, pid, ppid=msg.get("ppid"), role=role, t=t, name=msg.get("name"))
        elif kind == "spawned":
            child = int(msg["child"])
            fields = {"name": msg.get("name"), "daemon": bool(msg.get("daemon")),
                      "start_method": msg.get("method")}
            if child in run.processes:
                proc = hub.upsert_process(run, child, **fields)  # ppid: the child knows best
                hub.publish_proc(run, proc, "update")
            else:
                self._birth(live, child, ppid=pid, role="worker", t=t, **fields)
        elif kind == "child":
            if pid in run.processes:
                proc = hub.upsert_process(run, pid, name=msg.get("name"),
                                          daemon=bool(msg.get("daemon")))
                hub.publish_proc(run, proc, "update")
            else:
                self._birth(live, pid, role="worker", t=t, name=msg.get("name"),
                            daemon=bool(msg.get("daemon")))
        elif kind in ("exiting", "reaped"):
            target = pid if kind == "exiting" else int(msg["child"])
            self._exit_code(live, target, int(msg["code"]))
        elif kind == "terminate":
            run.terminated.add(int(msg["child"]))
            hub.add_event(run, {"t": t, "pid": pid, "kind": "terminate",
                                "detail": f"{pid} sent signal {msg.get('sig')} to {msg['child']}",
                                "channel": str(msg["child"])})
        elif kind == "result":
            with hub.lock:
                run.result = msg.get("value")
        elif kind == "error":
            with hub.lock:
                run.error = str(msg.get("text", ""))[-4000:]
        elif kind == "finding":
            with hub.lock:
                run.findings = [f for f in run.findings if f["key"] != msg.get("key")] + [{
                    "key": str(msg.get("key")), "value": msg.get("value"),
                    "text": str(msg.get("text", "")), "unit": msg.get("unit")}]
        elif kind == "mark":
            with hub.lock:
                run.marks.append((t, str(msg.get("label")), msg.get("detail") or {}))
            hub.add_event(run, {"t": t, "pid": pid, "kind": "mark",
                                "detail": str(msg.get("label"))})
        elif kind == "event":
            event = {k: msg.get(k) for k in ("kind", "channel", "msg", "size", "detail")}
            event.update(t=t, pid=pid)
            for k, v in msg.items():
                if k not in event and k not in ("k",):
                    event[k] = v
            hub.add_event(run, event)

    def _output(self, live: _Live, pid: int, stream: str, text: str, t: float) -> None:
        self.hub.add_output(live.run, pid, "err" if stream == "err" else "out", text, t)
        if live.echo is not None:
            live.echo(stream, text)

    def _on_pipe(self, pipe, live: _Live):
        """Raw writes to fd 1/2 (C code, subprocesses): tagged with the run's main pid."""
        stream, _, buf = live.pipes[pipe.fileno()]
        try:
            chunk = os.read(pipe.fileno(), 65536)
        except BlockingIOError:
            return
        except OSError:
            chunk = b""
        if chunk:
            buf += chunk
            if b"\n" in buf:
                *lines, rest = bytes(buf).split(b"\n")
                buf[:] = rest
                for line in lines:
                    self._output(live, live.run.main_pid, stream,
                                 line.decode("utf-8", "replace"), time.time())
            return
        if buf:
            self._output(live, live.run.main_pid, stream, buf.decode("utf-8", "replace"),
                         time.time())
        self._sel.unregister(pipe)
        del live.pipes[pipe.fileno()]
        pipe.close()

    # -- processes ---------------------------------------------------------------------------
    def _birth(self, live: _Live, pid: int, t: float | None = None, **fields) -> None:
        run, hub = live.run, self.hub
        fields = {k: v for k, v in fields.items() if v is not None}
        proc = hub.upsert_process(run, pid, started_at=t or time.time(), **fields)
        try:
            fd = os.pidfd_open(pid)
        except ProcessLookupError:
            fd = None
        hub.publish_proc(run, proc, "start")
        if fd is None:
            self._ended(live, pid)
            return
        live.pidfds[pid] = fd
        self._sel.register(fd, selectors.EVENT_READ, ("pidfd", (live, pid)))
        self.on_birth(run, pid)
        limits = hub.limits
        if run.stop_reason is None and hub.live_process_count() > limits.max_processes:
            self._request_stop(run.id, f"process limit: more than {limits.max_processes} "
                                       f"live processes", False, at_once=True)

    def _on_pidfd(self, fd, data):
        live, pid = data
        self._ended(live, pid)

    def _reap(self, live: _Live, pid: int) -> int | None:
        """Collect the exit status if the process is our child (the main, or an orphan)."""
        if pid == live.popen.pid:
            try:
                return live.popen.wait(timeout=1)
            except subprocess.TimeoutExpired:
                return None
        fd = live.pidfds.get(pid)
        try:
            info = os.waitid(os.P_PIDFD, fd, os.WEXITED | os.WNOHANG) if fd is not None \
                else os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG)
        except (ChildProcessError, OSError):
            return None
        return _decode_wait(info) if info is not None else None

    def _ended(self, live: _Live, pid: int) -> None:
        run, hub = live.run, self.hub
        fd = live.pidfds.pop(pid, None)
        if fd is not None:
            self.on_death(run, pid)
        code = self._reap(live, pid)
        if fd is not None:
            self._sel.unregister(fd)
            os.close(fd)
        if code is None:
            code = live.codes.get(pid)
        proc = hub.upsert_process(run, pid, ended_at=time.time(), exitcode=code,
                                  end=self._end_kind(live, pid, code))
        hub.publish_proc(run, proc, "exit")
        if pid == run.main_pid:
            live.main_exited_at = time.monotonic()

    def _exit_code(self, live: _Live, pid: int, code: int) -> None:
        """The run told us a code; if the exit was already announced without it, amend it."""
        live.codes[pid] = code
        proc = live.run.processes.get(pid)
        if proc is not None and proc["ended_at"] is not None and proc["exitcode"] is None:
            proc = self.hub.upsert_process(live.run, pid, exitcode=code,
                                           end=self._end_kind(live, pid, code))
            self.hub.publish_proc(live.run, proc, "exit")

    @staticmethod
    def _end_kind(live: _Live, pid: int, code: int | None) -> str | None:
        """How a process ended; None while its code is unknown (a grandchild its parent has
        not reaped yet): nobody killed it, so "killed" would be a lie, and "crash" a guess."""
        run = live.run
        if code == 0:
            return "exit"
        if run.stop_reason is not None or pid in live.killed:
            return "killed"
        if pid in run.terminated and (code is None or code < 0):
            return "terminated"
        return "crash" if code is not None else None

    # -- stopping ----------------------------------------------------------------------------
    def _request_stop(self, run_id: str, reason: str, want_future: bool, at_once: bool = False):
        live = self._live.get(run_id)
        if live is None:
            done: concurrent.futures.Future = concurrent.futures.Future()
            done.set_result(self.hub.get(run_id))
            return done if want_future else None
        run = live.run
        if run.stop_reason is None:
            run.stop_reason = reason
            self._kill_group(live, signal.SIGTERM)
            # A run growing past the process limit may be a fork bomb: no grace for it.
            live.kill_at = time.monotonic() + (0 if at_once else self.hub.limits.stop_grace)
        return self._waiter(run_id) if want_future else None

    def _waiter(self, run_id: str):
        live = self._live.get(run_id)
        if live is None:
            return None
        fut: concurrent.futures.Future = concurrent.futures.Future()
        live.waiters.append(fut)
        return fut

    def _kill_group(self, live: _Live, sig: int) -> None:
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

    def _kill_all(self) -> None:
        for live in list(self._live.values()):
            if live.run.stop_reason is None:
                live.run.stop_reason = "server shut down"
            self._kill_group(live, signal.SIGKILL)
            live.kill_at = time.monotonic()

    # -- timers ------------------------------------------------------------------------------
    def _on_timers(self) -> None:
        now = time.monotonic()
        for live in list(self._live.values()):
            if live.deadline is not None and now >= live.deadline and live.run.stop_reason is None:
                live.deadline = None
                self._request_stop(live.run.id, f"time limit: ran longer than "
                                                f"{live.run.time_limit:g} s", False)
            if live.kill_at is not None and now >= live.kill_at:
                live.kill_at = now + 0.2  # keep killing whatever still appears
                self._kill_group(live, signal.SIGKILL)
            if live.main_exited_at is not None:
                self._maybe_finish(live, now)
        if (self._live or now < self._strays_until) and now >= self._next_discovery:
            self._next_discovery = now + DISCOVERY_PERIOD
            if self._live:
                self._discover()
            self._reap_strays()

    def _discover(self) -> None:
        """Children the probe cannot report (os.fork, subprocess, C code), orphans, zombies."""
        my_children = _children_of(self.server_pid)
        self._adopt(my_children)
        for live in list(self._live.values()):
            run = live.run
            for pid in list(run.live_pids()):
                stat = _read_proc_stat(pid)
                if stat is None:
                    continue
                _, ppid, _ = stat
                if ppid == self.server_pid and pid != run.main_pid and \
                        not run.processes[pid]["orphan"]:
                    proc = self.hub.upsert_process(run, pid, orphan=True, ppid=ppid)
                    self.hub.publish_proc(run, proc, "update")
                for child in _children_of(pid) - set(run.processes):
                    self._birth(live, child, ppid=pid, role="worker")
            # Orphans that died before we noticed them are our zombies now: reap them.
            for pid in my_children & set(run.processes):
                if pid != run.main_pid and pid not in live.pidfds:
                    code = self._reap(live, pid)
                    if code is not None:
                        self._exit_code(live, pid, code)

    def _reap_strays(self) -> None:
        """Zombies re-parented to us (the subreaper) that no run tracked: a fork bomb's
        children killed with their group, orphans that died between two scans. Their process
        group says they were ours; a zombie nobody reaps would stay until the server exits."""
        # Not a process a live run still tracks: its pidfd handler reaps it and records its code
        # (an orphan that dies just before a timer round would otherwise lose its exit code).
        tracked = {pid for live in self._live.values() for pid in (live.popen.pid, *live.pidfds)}
        for pid in _children_of(self.server_pid) - tracked:
            stat = _read_proc_stat(pid)
            if stat is not None and stat[0] == "Z" and stat[2] in self._groups:
                try:
                    os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG)
                except ChildProcessError:
                    pass

    def _adopt(self, my_children: set[int]) -> None:
        """Processes of a run nobody reported: in its cgroup (setsid cannot hide them), or
        orphans re-parented to us (the subreaper) before a scan saw them under their parent."""
        known = {pid for live in self._live.values() for pid in live.run.processes}
        for live in list(self._live.values()):
            if live.cgroup is not None:
                for pid in sorted(live.cgroup.pids() - known):
                    stat = _read_proc_stat(pid)
                    if stat is not None:
                        self._birth(live, pid, ppid=stat[1], role="worker",
                                    orphan=stat[1] == self.server_pid)
                        known.add(pid)
        groups = {live.popen.pid: live for live in self._live.values()}
        for pid in sorted(my_children - known):
            stat = _read_proc_stat(pid)
            if stat is None:
                continue
            # A zombie's environment is gone, but its process group stays readable.
            live = self._live.get(_run_of(pid, self.marker)) or groups.get(stat[2])
            if live is not None:
                self._birth(live, pid, ppid=self.server_pid, role="worker", orphan=True)

    def _maybe_finish(self, live: _Live, now: float) -> None:
        """After the main's exit: let the rest end on its own briefly, then kill it, then end."""
        run = live.run
        waited = now - live.main_exited_at
        if not run.live_pids() or (live.cgroup is not None and waited >= LEFTOVER_GRACE):
            # Before deciding that nothing is left: a child nobody reported (subprocess,
            # os.fork) that no scan has seen yet is the server's orphan now (its subreaper) or
            # in the run's cgroup. Adopted, it is ended with the run instead of outliving it.
            self._adopt(_children_of(self.server_pid))
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
                self._ended(live, pid)
        elif live.pipes and waited < FINALIZE_GRACE:
            return   # something outside the run still holds its stdout: wait a little
        self._finish(live)

    def _drain(self, live: _Live) -> None:
        for conn, _ in list(live.conns.values()):
            self._on_conn(conn, live)
        for _, pipe, _ in list(live.pipes.values()):
            for _ in range(64):   # bounded: a writer outside the run may keep it open
                if pipe.fileno() not in live.pipes:
                    break
                self._on_pipe(pipe, live)

    def _finish(self, live: _Live) -> None:
        run, hub = live.run, self.hub
        self._drain(live)
        try:
            self.on_finish(run)
        except Exception:
            log.exception("on_finish of run %s", run.id)
        for conn, _ in list(live.conns.values()):
            self._sel.unregister(conn)
            conn.close()
        for _, pipe, _ in list(live.pipes.values()):
            self._sel.unregister(pipe)
            pipe.close()
        self._sel.unregister(live.listener)
        live.listener.close()
        if live.cgroup is not None:
            self.cgroups.release(live.cgroup)
        try:
            os.unlink(live.sock_path)
        except OSError:
            pass
        shutil.rmtree(self.stacks_folder(run.id), ignore_errors=True)
        main_code = run.processes[run.main_pid]["exitcode"]
        if run.stop_reason is not None:
            state, error = "stopped", run.stop_reason
        elif main_code == 0:
            state, error = "finished", None
        else:
            state = "failed"
            error = run.error or f"the main process exited with code {main_code}"
        if live.analyze is not None and state == "finished":
            try:
                with hub.lock:
                    extra = live.analyze(run) or []
                keys = {f["key"] for f in extra}
                run.findings = [f for f in run.findings if f["key"] not in keys] + list(extra)
            except Exception:
                log.exception("analysis of run %s", run.id)
        del self._live[run.id]
        self._strays_until = time.monotonic() + 5.0
        self._reap_strays()
        hub.set_state(run, state, ended_at=time.time(), error=error)
        for fut in live.waiters:
            if not fut.done():
                fut.set_result(run)
