"""The dashboard server as benchmarks run it: a subprocess on a free port, with one extra
benchmark-only route (``POST /bench/watch {"argv": [...]}``) that starts a command as a watched
run, so workloads other than the lessons (64 busy processes, churn) can be watched.

Prints ``{"port": N, "pid": P}`` on its first line, then serves until SIGTERM.
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import sys

from flask import jsonify, request
from werkzeug.serving import make_server

from mpdash.dashboard import Dashboard
from mpdash.runs import PROJECT_ROOT
from mpdash.state import Limits
from mpdash.web import create_app


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--hz", type=float, default=10.0)
    parser.add_argument("--backend", default="auto")
    parser.add_argument("--no-stacks", action="store_true",
                        help="runs start without the in-run stacks half (bench_stacks)")
    args = parser.parse_args()
    dash = Dashboard(Limits(max_processes=600, max_runs=8, run_seconds=600), hz=args.hz)
    if args.backend != "auto":
        from mpdash.sampler import make_backend
        dash.sampler.backend.close()
        dash.sampler.backend = make_backend(args.backend)
    dash.engine.stacks_enabled = not args.no_stacks
    logging.getLogger("werkzeug").setLevel(logging.CRITICAL)
    app = create_app(dash)

    @app.post("/bench/watch")
    def watch():
        run = dash.engine.start_command(list(request.json["argv"]), cwd=PROJECT_ROOT)
        return jsonify({"id": run.id})

    server = make_server("127.0.0.1", 0, app, threaded=True)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    print(json.dumps({"port": server.server_port, "pid": os.getpid()}), flush=True)
    try:
        server.serve_forever()
    except SystemExit:
        pass
    finally:
        dash.close()


if __name__ == "__main__":
    main()
