"""``python -m mpdash watch [options] -- COMMAND...``: the user's own program, watched as a run.

The program runs unmodified (the probe reaches it through ``sitecustomize`` on the run's
PYTHONPATH, see runs.py) while the dashboard is served; the run is titled with the command. Its
output is echoed here too and our standard input is passed to it.

Terminal details that shape this module:
- the program runs in its own process group (so Stop can kill all of it), which is not the
  terminal's foreground group: reading the terminal from there would stop it with SIGTTIN. When
  stdin is a terminal we read it ourselves and pump it into a pipe; any other stdin (a file, a
  pipe, /dev/null) is handed over as it is.
- for the same reason Ctrl-C reaches only us: the first one is forwarded to the program's group
  as SIGINT (what a terminal does for a program run bare), a second one stops the run.
- the echo is written by its own thread, so a slow terminal never stalls the supervisor (which
  serves every run).
"""
from __future__ import annotations

import errno
import json
import os
import queue
import shlex
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
import webbrowser

from mpdash.store import DEFAULT_DATA_DIR

__all__ = ["watch", "exit_status"]

EXIT_BAD_ARGS = 2


def exit_status(run: dict) -> int:
    """The program's exit status as a shell reports it (a signal N becomes 128 + N)."""
    main = next((p for p in run["processes"] if p["role"] == "main"), None)
    code = main["exitcode"] if main else None
    if code is None:
        return 1
    return code if code >= 0 else 128 - code


def _say(text: str) -> None:
    print(f"mpdash: {text}", file=sys.stderr, flush=True)


class _Echo:
    """Writes the program's lines to our terminal from its own thread."""

    def __init__(self, all_to_stderr: bool):
        self.all_to_stderr = all_to_stderr
        self._queue: queue.SimpleQueue = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._loop, name="mpdash-echo", daemon=True)
        self._thread.start()

    def __call__(self, stream: str, text: str) -> None:
        self._queue.put((stream, text))

    def _loop(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                return
            stream, text = item
            out = sys.stderr if self.all_to_stderr or stream == "err" else sys.stdout
            try:
                out.write(text + "\n")
                out.flush()
            except (OSError, ValueError):
                pass

    def close(self) -> None:
        self._queue.put(None)
        self._thread.join(timeout=2)


def _stdin_for_run():
    """What to give the program as stdin, and a closer for what we opened for it."""
    try:
        fd = sys.stdin.fileno()
        os.fstat(fd)
    except (AttributeError, ValueError, OSError):
        return subprocess.DEVNULL, lambda: None
    if not os.isatty(fd):
        return fd, lambda: None
    read_end, write_end = os.pipe()

    def pump():
        try:
            while True:
                data = os.read(fd, 65536)
                if not data:
                    break
                os.write(write_end, data)
        except OSError:
            pass
        finally:
            try:
                os.close(write_end)
            except OSError:
                pass

    threading.Thread(target=pump, name="mpdash-stdin", daemon=True).start()
    return read_end, lambda: os.close(read_end)


def _program_exists(argv0: str) -> bool:
    if os.sep in argv0:
        return os.path.isfile(argv0) and os.access(argv0, os.X_OK)
    return shutil.which(argv0) is not None


def watch(command: list[str], port: int = 5000, host: str = "127.0.0.1", open_browser: bool = False,
          exit_when_done: bool = False, as_json: bool = False, data_dir: str | None = DEFAULT_DATA_DIR,
          timeout: float | None = None, hz: float = 10.0) -> int:
    if command and command[0] == "--":
        command = command[1:]
    if not command:
        _say("error: no command to watch; usage: python -m mpdash watch [options] -- COMMAND...")
        return EXIT_BAD_ARGS
    if not _program_exists(command[0]):
        what = "is not executable" if os.path.isfile(command[0]) else "not found"
        _say(f"error: program {what}: {command[0]!r}")
        return EXIT_BAD_ARGS
    if timeout is not None and not timeout > 0:
        _say("error: --timeout must be a positive number of seconds")
        return EXIT_BAD_ARGS

    from werkzeug.serving import make_server

    from mpdash.dashboard import Dashboard
    from mpdash.lessons import ParamError
    from mpdash.runs import LimitError
    from mpdash.web import create_app

    try:
        dash = Dashboard(hz=hz, data_dir=data_dir)
    except (OSError, sqlite3.Error) as exc:
        _say(f"error: cannot keep run history in {data_dir}: {exc}; choose another with --data")
        return EXIT_BAD_ARGS
    try:
        try:
            # Werkzeug's make_server answers a busy port with its own text and sys.exit(1):
            # find out first, so the message names --port and the status is 2, as documented.
            with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as probe:
                probe.bind((host, port))
            server = make_server(host, port, create_app(dash), threaded=True)
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                _say(f"error: port {port} on {host} is already in use; choose another with --port")
            else:
                _say(f"error: cannot serve on {host}:{port}: {exc.strerror}")
            return EXIT_BAD_ARGS
        serving = threading.Thread(target=server.serve_forever, name="mpdash-http", daemon=True)
        serving.start()
        try:
            return _watch_run(dash, server, command, exit_when_done, as_json, timeout,
                              open_browser, ParamError, LimitError)
        finally:
            server.shutdown()
            serving.join(timeout=5)
    finally:
        dash.close()


def _watch_run(dash, server, command, exit_when_done, as_json, timeout, open_browser,
               ParamError, LimitError) -> int:
    url = f"http://{server.host}:{server.server_port}"
    echo = _Echo(all_to_stderr=as_json)   # --json: stdout carries the run object only
    stdin, close_stdin = _stdin_for_run()
    try:
        run = dash.engine.start_command(command, title=shlex.join(command)[:120], timeout=timeout,
                                        echo=echo, stdin=stdin, cwd=None)
    except (ParamError, LimitError) as exc:
        echo.close()
        _say(f"error: {exc}")
        return EXIT_BAD_ARGS
    finally:
        close_stdin()   # the program has its own copy now
    _say(f"watching {shlex.join(command)} as run {run.id} — {url}  (Ctrl-C to stop)")
    if open_browser:
        webbrowser.open(url)
    interrupts = 0
    while True:
        try:
            dash.engine.wait(run.id)
            break
        except KeyboardInterrupt:
            interrupts += 1
            if interrupts == 1:
                try:
                    os.killpg(run.main_pid, signal.SIGINT)
                except (ProcessLookupError, PermissionError):
                    pass
                _say("sent SIGINT to the program; Ctrl-C again stops it")
            else:
                dash.engine.stop(run.id, reason="stopped from the terminal (Ctrl-C)")
    echo.close()
    data = dash.hub.snapshot(run)
    status = exit_status(data)
    _say(f"{shlex.join(command)} ended: {data['state']}, exit status {status}, "
         f"{len(data['processes'])} processes, {data['duration']:.2f} s")
    if data["state"] == "stopped" and data["error"]:
        _say(f"the run was stopped: {data['error']}")
    if exit_when_done:
        if as_json:
            json.dump(data, sys.stdout, default=repr)
            print(flush=True)
        return status
    _say(f"still serving {url} with the run's history; Ctrl-C to quit")
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass
    return status
