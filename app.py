"""Serve the mpdash dashboard: ``python app.py [--host H] [--port P] [--open] [--hz N] [--data DIR] [--token T]``."""
from __future__ import annotations

import argparse
import errno
import logging
import os
import signal
import socket
import sqlite3
import sys
import webbrowser


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="app.py", description="Serve the mpdash dashboard.")
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=5000, help="port to bind (default 5000)")
    parser.add_argument("--open", action="store_true", help="open the page in a browser")
    parser.add_argument("--hz", type=float, default=10.0, help="sample rate, 1-50 (default 10)")
    parser.add_argument("--data", metavar="DIR", default=None,
                        help="where run history is kept, in SQLite (default: instance/)")
    parser.add_argument("--stall", type=float, default=3.0, metavar="S",
                        help="take a run's stacks by themselves after S seconds without "
                             "progress (default 3; 0: off)")
    parser.add_argument("--token", default=None,
                        help="presenter token (default: $MPDASH_TOKEN, or generated when bound "
                             "to anything but 127.0.0.1/localhost/::1)")
    args = parser.parse_args(argv)
    if not 1 <= args.hz <= 50:
        parser.error("--hz must be between 1 and 50")
    if not 0 <= args.port <= 65535:
        parser.error("--port must be between 0 and 65535")
    if not args.stall >= 0:
        parser.error("--stall must be 0 (off) or a number of seconds")
    return args


def port_free(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                return False
            raise
    return True


def free_port(host: str) -> int:
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as probe:
        probe.bind((host, 0))
        return probe.getsockname()[1]


def main(argv=None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    # Werkzeug's access log (it sets itself to INFO) would scroll the URLs printed below out of
    # sight, print every ?token= on a projected terminal, and add development-server warnings.
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    if args.port and not port_free(args.host, args.port):
        print(f"error: port {args.port} on {args.host} is already in use; "
              f"choose another with --port", file=sys.stderr, flush=True)
        return 2

    if args.port == 0:   # any free port, but the URL we print must name the real one
        args.port = free_port(args.host)

    from mpdash.dashboard import Dashboard
    from mpdash.store import DEFAULT_DATA_DIR
    from mpdash.web import create_app, security

    token = args.token or os.environ.get("MPDASH_TOKEN") or None
    if token is None and not security.is_open_host(args.host):
        token = security.generate_token()
    try:
        dashboard = Dashboard(hz=args.hz, data_dir=args.data or DEFAULT_DATA_DIR, stall=args.stall)
    except (OSError, sqlite3.Error) as exc:
        print(f"error: cannot keep run history in {args.data or DEFAULT_DATA_DIR}: {exc}; "
              f"choose another with --data", file=sys.stderr, flush=True)
        return 2
    app = create_app(dashboard, {"MPDASH_TOKEN": token} if token else None)
    socketio = app.extensions["socketio"]

    def on_signal(signum, frame):
        raise SystemExit(128 + signum)

    # Started as `make run &` from a script, SIGINT arrives ignored: "Ctrl-C to stop" must hold.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGHUP, on_signal)
    host = f"[{args.host}]" if ":" in args.host else args.host
    url = f"http://{host}:{args.port}/"
    if token:
        viewer = app.extensions["mpdash_access"].viewer
        url = f"{url}?token={token}"
        print(f"mpdash serving on {url}  (Ctrl-C to stop)", flush=True)
        print(f"viewer link (read-only): http://{host}:{args.port}/?token={viewer}", flush=True)
    else:
        print(f"mpdash serving on {url}  (Ctrl-C to stop)", flush=True)
    if args.open:
        webbrowser.open(url)
    try:
        socketio.run(app, host=args.host, port=args.port, allow_unsafe_werkzeug=True,
                     use_reloader=False, log_output=False)
    except KeyboardInterrupt:
        pass
    finally:
        dashboard.close()   # every run's processes are gone before we return
    return 0


if __name__ == "__main__":
    sys.exit(main())
