"""The one way the dashboard is served: ``mpdash serve``, ``python app.py`` and ``mpdash watch``.

What they share is defined here once: the serving options and their checks, the exit
statuses, the listening socket, the run history's folder, the presenter token, the signals.

- The port is bound here, not by Werkzeug: Werkzeug answers a busy port with its own text and
  ``sys.exit(1)``, where ours names ``--port`` and exits 2 as documented; and the URL printed for
  ``--port 0`` names the port really bound, with no window for another program to take it.
- Started in the background by a script (``make run &``), a process inherits SIGINT ignored;
  "Ctrl-C to stop" must still hold, so SIGINT is given back its KeyboardInterrupt, and
  SIGTERM/SIGHUP become a SystemExit: every ``finally`` runs and the runs' processes go first.

Flask is imported only when something is served: ``mpdash list`` and ``mpdash run`` stay light.
"""
from __future__ import annotations

import argparse
import errno
import logging
import os
import shutil
import signal
import socket
import sqlite3
import sys
import threading
import webbrowser
from typing import Callable

from mpdash import paths
from mpdash.stall import DEFAULT_STALL
from mpdash.hostnames import host_name

__all__ = ["EXIT_OK", "EXIT_RUN_FAILED", "EXIT_BAD_ARGS", "add_serve_options", "serve",
           "Served", "say", "positive_seconds"]

EXIT_OK, EXIT_RUN_FAILED, EXIT_BAD_ARGS = 0, 1, 2
POLL_INTERVAL = 0.1   # s: how soon a serving thread notices it is asked to stop


def say(text: str) -> None:
    """A line from mpdash itself, on stderr (stdout may carry a program's output or JSON)."""
    print(f"mpdash: {text}", file=sys.stderr, flush=True)


def _ranged(kind: type, low: float, high: float, what: str):
    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{what}, got {text!r}") from None
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"{what}, got {text}")
        return value
    return parse


def _seconds(text: str, ok, what: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not ok(value):   # nan fails every comparison, so it is refused too
        raise argparse.ArgumentTypeError(f"must be {what}, got {text!r}")
    return value


def positive_seconds(text: str) -> float:
    return _seconds(text, lambda v: v > 0, "a positive number of seconds")


def stall_seconds(text: str) -> float:
    return _seconds(text, lambda v: 0 <= v < float("inf"), "0 (off) or a number of seconds")


def _allow_host(text: str) -> str:
    try:
        return host_name(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def add_serve_options(parser: argparse.ArgumentParser, default_port: int = 5000) -> None:
    """Every option of serving, checked as it is parsed (a bad value: exit 2 with argparse's
    message). The one place to add a serving option: ``serve`` and ``watch`` both take these."""
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    parser.add_argument("--port", default=default_port,
                        type=_ranged(int, 0, 65535, "must be a port number, 0-65535"),
                        help=f"port to bind (default {default_port}; 0: any free port)")
    parser.add_argument("--open", action="store_true", help="open the page in a browser")
    parser.add_argument("--hz", default=10.0, type=_ranged(float, 1, 50, "must be between 1 and 50"),
                        help="sample rate, 1-50 (default 10)")
    parser.add_argument("--data", metavar="DIR", default=None,
                        help=f"where run history is kept, in SQLite (default {paths.default_data_dir()})")
    parser.add_argument("--token", default=None,
                        help="presenter token (default: $MPDASH_TOKEN, or generated when bound "
                             "to anything but 127.0.0.1/localhost/::1)")
    parser.add_argument("--stall", metavar="S", default=DEFAULT_STALL, type=stall_seconds,
                        help=f"take a live run's stacks by themselves after S seconds without "
                             f"progress (default {DEFAULT_STALL:g}; 0: off)")
    parser.add_argument("--allow-host", action="append", default=[], metavar="NAME",
                        type=_allow_host,
                        help="also answer requests that name this host (repeatable); any other "
                             "name than the bound address is refused (DNS rebinding)")


def add_python_option(parser: argparse.ArgumentParser) -> None:
    """``--python PATH`` (``serve`` and app.py, not ``watch``, whose program brings its own):
    an interpreter the page may run lessons with, besides those found (mpdash/pythons.py)."""
    parser.add_argument("--python", action="append", default=[], metavar="PATH",
                        type=python_path,
                        help="offer lessons on this CPython 3.10-3.14 too (repeat for several)")


def python_path(text: str) -> str:
    from mpdash import pythons
    found = text if os.sep in text else shutil.which(text)
    if not found or pythons.probe(found) is None:
        raise argparse.ArgumentTypeError(f"{text!r} is not a CPython 3.10-3.14 that runs here")
    return os.path.abspath(found)


class UsageError(Exception):
    """Nothing can be served as asked (busy port, unusable history folder): exit status 2."""


class Served:
    """A dashboard being served: its Dashboard, Flask app and Werkzeug server, and its links."""

    def __init__(self, dashboard, app, server, token: str | None):
        self.dashboard, self.app, self.server, self.token = dashboard, app, server, token
        host = server.host
        self.base = f"http://{f'[{host}]' if ':' in host else host}:{server.port}"
        viewer = app.extensions["mpdash_access"].viewer if token else None
        # The presenter's link; the viewer's (read-only, for a class) exists in token mode only.
        self.link = f"{self.base}/?token={token}" if token else f"{self.base}/"
        self.viewer_link = f"{self.base}/?token={viewer}" if viewer else None


def _listen(host: str, port: int) -> socket.socket:
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)   # as Werkzeug binds
        sock.bind((host, port))
        sock.listen(128)
    except OSError as exc:
        sock.close()
        if exc.errno == errno.EADDRINUSE:
            raise UsageError(f"port {port} on {host} is already in use; "
                             f"choose another with --port") from None
        raise UsageError(f"cannot serve on {host}:{port}: {exc.strerror or exc}; "
                         f"check --host and --port") from None
    return sock


def _token(args) -> str | None:
    from mpdash.web import security
    token = args.token or os.environ.get("MPDASH_TOKEN") or None
    if token is None and not security.is_open_host(args.host):
        token = security.generate_token()
    return token


def served_names(args) -> list[str]:
    """--allow-host, and the --host name itself: the printed link uses it (``0.0.0.0``, a name)."""
    try:
        return [_allow_host(args.host), *args.allow_host]
    except argparse.ArgumentTypeError:   # no name a browser sends: binding says what is wrong
        return list(args.allow_host)


def _build(args, listener: socket.socket) -> Served:
    from werkzeug.serving import make_server

    from mpdash.dashboard import Dashboard
    from mpdash.web import create_app

    data_dir = args.data or paths.default_data_dir()
    try:
        dashboard = Dashboard(hz=args.hz, data_dir=data_dir, stall=args.stall,
                              pythons=tuple(getattr(args, "python", None) or ()))
    except (OSError, sqlite3.Error) as exc:
        raise UsageError(f"cannot keep run history in {data_dir}: {exc}; "
                         f"choose another with --data") from None
    try:
        token = _token(args)
        config = {"MPDASH_ALLOW_HOSTS": served_names(args)}
        app = create_app(dashboard, {**config, "MPDASH_TOKEN": token} if token else config)
        server = make_server(args.host, args.port, app, threaded=True, fd=listener.fileno())
    except BaseException:
        dashboard.close()
        raise
    return Served(dashboard, app, server, token)


def _handle_signals() -> None:
    def leave(signum, frame):
        raise SystemExit(128 + signum)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, leave)
    # nohup (or a supervisor) set SIGHUP to ignored on purpose: a closed terminal must not end us.
    if signal.getsignal(signal.SIGHUP) is not signal.SIG_IGN:
        signal.signal(signal.SIGHUP, leave)


def _announce(served: Served) -> None:
    print(f"mpdash serving on {served.link}  (Ctrl-C to stop)", flush=True)
    if served.viewer_link:
        print(f"viewer link (read-only): {served.viewer_link}", flush=True)


def serve(args, during: Callable[[Served], int] | None = None) -> int:
    """Serve the dashboard as ``args`` (from a parser given ``add_serve_options``) asks.

    ``during`` None (``serve``): print the links, serve in this thread until Ctrl-C, SIGTERM or
    SIGHUP. Otherwise (``watch``): serve from a thread while ``during(served)`` runs here; its
    return value is the exit status. Either way every run's processes are gone on return.
    """
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    # Werkzeug's access log (it sets itself to INFO) would scroll the links out of sight, print
    # every ?token= on a projected terminal, and mix into a watched program's output.
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    try:
        listener = _listen(args.host, args.port)
        try:
            served = _build(args, listener)
        finally:
            listener.close()   # the server holds its own duplicate
    except UsageError as exc:
        say(f"error: {exc}")
        return EXIT_BAD_ARGS
    try:
        _handle_signals()
        if during is None:
            _announce(served)
            if args.open:
                webbrowser.open(served.link)
            served.server.serve_forever()   # returns on Ctrl-C (Werkzeug catches it)
            return EXIT_OK
        thread = threading.Thread(target=served.server.serve_forever, name="mpdash-http",
                                  kwargs={"poll_interval": POLL_INTERVAL}, daemon=True)
        thread.start()
        try:
            return during(served)
        except KeyboardInterrupt:   # one that ``during`` left to us: what a shell reports
            return 128 + signal.SIGINT
        finally:
            served.server.shutdown()
            thread.join(timeout=5)
    finally:
        served.server.server_close()
        served.dashboard.close()
