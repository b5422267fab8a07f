"""``mpdash watch [options] -- COMMAND...``: the user's own program, watched as a run.

The program runs unmodified (the probe reaches it through ``sitecustomize`` on the run's
PYTHONPATH, see runs.py) while the dashboard is served (by mpdash.serving, as ``mpdash serve``
serves it); the run is titled with the command. Its output is echoed here too and our standard
input is passed to it.

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

import argparse
import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import threading
import time
import webbrowser

from mpdash import serving
from mpdash.echo import Echo
from mpdash.serving import EXIT_BAD_ARGS, say

__all__ = ["watch", "exit_status", "process_count", "byte_size"]

_UNITS = {"": 1, "K": 2**10, "M": 2**20, "G": 2**30, "T": 2**40}


def process_count(text: str) -> int:
    """``--max-procs N``: a whole number of processes, 1 or more."""
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a whole number of processes >= 1, got {text!r}")
    return value


def byte_size(text: str) -> int:
    """``--max-rss SIZE``: bytes, or with a binary unit: ``512M``, ``4G``, ``1.5G`` (K/M/G/T,
    an optional ``i``/``B`` after it: ``4GiB`` is ``4G``)."""
    match = re.fullmatch(r"\s*([0-9]*\.?[0-9]+)\s*([KMGT]?)(?:i?B)?\s*", text, re.IGNORECASE)
    value = float(match.group(1)) * _UNITS[match.group(2).upper()] if match else 0
    if value < 2**20:   # below 1 MiB no Python process even starts: a typo, not a limit
        raise argparse.ArgumentTypeError(f"must be a size of at least 1M, like 512M or 4G, got {text!r}")
    return int(value)


def exit_status(run: dict) -> int:
    """The program's exit status as a shell reports it (a signal N becomes 128 + N)."""
    main = next((p for p in run["processes"] if p["role"] == "main"), None)
    code = main["exitcode"] if main else None
    if code is None:
        return 1
    return code if code >= 0 else 128 - code


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


def _stall_printer(run_id: str, echo: Echo):
    """A stalled run explains itself on stderr, like ``py-spy dump`` (mpdash/stacks.py). Hub
    listeners run under its lock: this only queues the lines for the echo thread."""
    from mpdash.stacks import format_snapshot

    def show(name, msg):
        if name == "stacks" and msg["run"] == run_id and msg["reason"] == "stall":
            lines = format_snapshot(msg)
            echo("err", f"mpdash: {lines[0]}")
            for line in lines[1:]:
                echo("err", line)
    return show


def _program_exists(argv0: str) -> bool:
    if os.sep in argv0:
        return os.path.isfile(argv0) and os.access(argv0, os.X_OK)
    return shutil.which(argv0) is not None


def watch(args) -> int:
    """``args``: serving options (see serving.add_serve_options) plus ``program``, ``exit``,
    ``json``, ``timeout``, ``max_procs`` and ``max_rss``. Returns the exit status."""
    command = args.program
    if command and command[0] == "--":
        command = command[1:]
    if not command:
        say("error: no command to watch; usage: mpdash watch [options] -- COMMAND...")
        return EXIT_BAD_ARGS
    if not _program_exists(command[0]):
        what = "is not executable" if os.path.isfile(command[0]) else "not found"
        say(f"error: program {what}: {command[0]!r}")
        return EXIT_BAD_ARGS
    return serving.serve(args, during=lambda served: _watch_run(served, command, args))


def _watch_run(served, command: list[str], args) -> int:
    from mpdash.lessons import ParamError
    from mpdash.runs import LimitError

    dash = served.dashboard
    echo = Echo(all_to_stderr=args.json)   # --json: stdout carries the run object only
    stdin, close_stdin = _stdin_for_run()
    try:
        run = dash.engine.start_command(command, title=shlex.join(command)[:120],
                                        timeout=args.timeout, echo=echo, stdin=stdin, cwd=None,
                                        max_procs=getattr(args, "max_procs", None),
                                        max_rss=getattr(args, "max_rss", None))
    except (ParamError, LimitError) as exc:
        echo.close()
        say(f"error: {exc}")
        return EXIT_BAD_ARGS
    finally:
        close_stdin()   # the program has its own copy now
    dash.hub.subscribe(_stall_printer(run.id, echo))
    # Open mode: the bare base URL, which scripts extend with /api/...
    url = served.link if served.token else served.base
    say(f"watching {shlex.join(command)} as run {run.id} — {url}  (Ctrl-C to stop)")
    if served.viewer_link:
        say(f"viewer link (read-only): {served.viewer_link}")
    if args.open:
        webbrowser.open(served.link)
    # Every reaction to a Ctrl-C happens inside the try: a second Ctrl-C landing while the
    # first is passed on only counts, instead of escaping the loop (which ended the command
    # without the run's status or --json: test_a_second_ctrl_c_stops_the_run, 2 runs in 6).
    interrupts = handled = 0
    while True:
        try:
            if interrupts == 1 and handled == 0:
                try:
                    os.killpg(run.main_pid, signal.SIGINT)
                except (ProcessLookupError, PermissionError):
                    pass
                handled = 1
                say("sent SIGINT to the program; Ctrl-C again stops it")
            elif interrupts >= 2 and handled < 2:
                dash.engine.request_stop(run.id, "stopped from the terminal (Ctrl-C)")
                handled = 2
            dash.engine.wait(run.id)
            break
        except KeyboardInterrupt:
            interrupts += 1
    echo.close()
    data = dash.hub.snapshot(run)
    status = exit_status(data)
    say(f"{shlex.join(command)} ended: {data['state']}, exit status {status}, "
         f"{len(data['processes'])} processes, {data['duration']:.2f} s")
    if data["state"] == "stopped" and data["error"]:
        say(f"the run was stopped: {data['error']}")
    if args.exit:
        if args.json:
            json.dump(data, sys.stdout, default=repr)
            print(flush=True)
        return status
    say(f"still serving {url} with the run's history; Ctrl-C to quit")
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass
    return status
