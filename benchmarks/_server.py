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
    parser.add_argument("--data", default=None, help="history folder (default: none kept)")
    parser.add_argument("--nice", type=int, default=Limits.run_nice, help="Limits.run_nice")
    parser.add_argument("--no-stacks", action="store_true",
                        help="runs start without the in-run stacks half (bench_stacks)")
    args = parser.parse_args()
    # 256 forked workers sum to ~3 GiB of RSS, mostly the same shared pages: no memory limit.
    dash = Dashboard(Limits(max_processes=600, max_runs=8, run_seconds=600, run_tasks=2048,
                            run_rss_bytes=1 << 40, run_nice=args.nice),
                     hz=args.hz, data_dir=args.data)
    if args.backend != "auto":
        from mpdash.sampler import make_backend
        dash.sampler.backend.close()
        dash.sampler.backend = make_backend(args.backend)
    dash.engine.stacks_enabled = not args.no_stacks
    logging.getLogger("werkzeug").setLevel(logging.CRITICAL)
    app = create_app(dash)

    @app.post("/bench/watch")
    def watch():
        # A watched program has its own process limit (default max(256, 8 x cores)): the
        # benchmarks' 256 workers plus their main would pass it.
        run = dash.engine.start_command(list(request.json["argv"]), cwd=PROJECT_ROOT,
                                        max_procs=dash.hub.limits.max_processes)
        return jsonify({"id": run.id})

    @app.get("/bench/threads")
    def threads():
        """CPU seconds of each live thread of this server, by name (where a figure goes)."""
        import threading
        names = {t.native_id: t.name for t in threading.enumerate()}
        out: dict[str, float] = {}
        for tid in os.listdir("/proc/self/task"):
            try:
                with open(f"/proc/self/task/{tid}/schedstat") as f:
                    ns = int(f.read().split()[0])
            except (OSError, ValueError):
                continue
            name = names.get(int(tid), "?").split("-")[0] if names.get(int(tid), "").startswith("Thread") else names.get(int(tid), "?")
            out[name] = out.get(name, 0.0) + ns / 1e9
        return jsonify(out)

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
