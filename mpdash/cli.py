"""The ``mpdash`` command (also ``python -m mpdash``): ``serve``, ``list``, ``run``, ``watch``.

``mpdash serve [--host H] [--port P] [--open] [--hz N] [--data DIR] [--token T] [--python P]``
serves the dashboard (``python app.py`` is the same command); ``list`` prints the lessons;
``run LESSON [--param k=v]... [--json] [--trace F] [--csv F] [--python PATH]`` runs one
headless; ``watch [options] -- COMMAND...`` runs your own program as a run while serving.
Serving itself is mpdash.serving.
"""
from __future__ import annotations

import argparse
import json
import signal
import sys

from mpdash import lessons, serving
from mpdash.serving import EXIT_BAD_ARGS, EXIT_OK, EXIT_RUN_FAILED
from mpdash.watch import byte_size, process_count, watch


def build_parser(prog: str = "mpdash") -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=prog,
                                     description="Watch Python multiprocessing in real processes.")
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="serve the dashboard (what python app.py does)",
                           description="Serve the mpdash dashboard.")
    serving.add_serve_options(serve)
    serving.add_python_option(serve)
    sub.add_parser("list", help="lessons and their parameters")
    run = sub.add_parser("run", help="run a lesson headless and print what it measured")
    run.add_argument("lesson", help=f"lesson id (see: {prog} list)")
    run.add_argument("--param", action="append", default=[], metavar="K=V",
                     help="set a parameter; repeat for several")
    run.add_argument("--json", action="store_true", help="print the whole run object as JSON")
    run.add_argument("--trace", metavar="FILE",
                     help="write the run as a Chrome trace (open it in ui.perfetto.dev)")
    run.add_argument("--csv", metavar="FILE", help="write the run's metrics as CSV")
    run.add_argument("--python", metavar="PATH", default=None, type=serving.python_path,
                     help="run the lesson with this CPython 3.10-3.14 (default: mpdash's own)")
    watch = sub.add_parser("watch", help="run your own program as a run and serve the dashboard",
                           usage=f"{prog} watch [options] -- COMMAND...")
    serving.add_serve_options(watch)
    watch.add_argument("--exit", action="store_true",
                       help="return when the program ends, with its exit status")
    watch.add_argument("--json", action="store_true",
                       help="with --exit: print the run object (the program's output goes to stderr)")
    watch.add_argument("--timeout", type=serving.positive_seconds, default=None, metavar="S",
                       help="stop the program after S seconds (default: no limit)")
    watch.add_argument("--max-procs", type=process_count, default=None, metavar="N",
                       help="stop the program past N live processes (default: max(256, 8 x cores))")
    watch.add_argument("--max-rss", type=byte_size, default=None, metavar="SIZE",
                       help="stop the program once its processes hold more than SIZE of RSS "
                            "together, e.g. 512M or 4G (default: no limit)")
    watch.add_argument("program", nargs=argparse.REMAINDER, metavar="COMMAND",
                       help="the program and its arguments, after --")
    return parser


def cmd_list(out=sys.stdout) -> int:
    for lesson in lessons.catalog().values():
        print(f"{lesson.id:<22} §{lesson.section:<3} {lesson.title}", file=out)
        for p in lesson.params:
            bounds = (f" [{', '.join(p.choices)}]" if p.choices else
                      f" [{p.min:g}..{p.max:g}]" if p.min is not None and p.max is not None else "")
            unit = f" {p.unit}" if p.unit else ""
            print(f"    {p.name}={p.default!r}{unit} ({p.type}){bounds}  {p.help}", file=out)
    return EXIT_OK


def parse_params(lesson: lessons.Lesson, pairs: list[str]) -> dict:
    params = {}
    for pair in pairs:
        name, sep, text = pair.partition("=")
        if not sep:
            raise lessons.ParamError(f"--param takes NAME=VALUE, got {pair!r}")
        param = lesson.param(name)
        if param is None:
            raise lessons.ParamError(f"unknown param {name!r} for lesson '{lesson.id}'")
        params[name] = lessons.parse_cli_value(param, text)
    return lessons.validate_params(lesson, params)


def cmd_run(args) -> int:
    try:
        lesson = lessons.get(args.lesson)
        params = parse_params(lesson, args.param)
    except lessons.ParamError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_BAD_ARGS
    from mpdash.dashboard import Dashboard
    from mpdash.echo import Echo
    # Started from a script in the background, we inherit SIGINT ignored: Ctrl-C (or kill -INT)
    # must still stop the run, as it does for the server (serving.py).
    signal.signal(signal.SIGINT, signal.default_int_handler)
    echo = None if args.json else Echo(all_to_stderr=False)
    with Dashboard() as dash:
        if echo is not None:
            dash.hub.subscribe(_printer(echo))
        run = None
        try:
            run = dash.engine.start_lesson(lesson.id, params, python=args.python)
            dash.engine.wait(run.id)
        except KeyboardInterrupt:
            if run is None:   # before the start answered: closing the dashboard ends it
                print("interrupted", file=sys.stderr)
                return EXIT_RUN_FAILED
            dash.engine.stop(run.id, reason="interrupted (Ctrl-C)")
        finally:
            if echo is not None:
                echo.close(timeout=None)   # every line of the run before its summary
        data = dash.hub.snapshot(run)
    try:
        _write_exports(data, args.trace, args.csv)
    except OSError as exc:
        print(f"error: cannot write {exc.filename}: {exc.strerror}", file=sys.stderr)
        return EXIT_BAD_ARGS
    if args.json:
        json.dump(data, sys.stdout, indent=2, default=repr)
        print()
    else:
        print(f"\n{data['title']}: {data['state']} in {data['duration']:.2f} s")
        if data["result"] is not None:
            print(f"result: {json.dumps(data['result'])}")
        for finding in data["findings"]:
            print(f"  {'★' if finding.get('headline') else '-'} {finding['text']}")
        if args.trace:
            print(f"trace written to {args.trace} (open it in https://ui.perfetto.dev)")
        if args.csv:
            print(f"metrics written to {args.csv}")
        if data["error"]:
            print(f"error: {data['error']}", file=sys.stderr)
    return EXIT_OK if data["state"] == "finished" else EXIT_RUN_FAILED


def _write_exports(data: dict, trace_path: str | None, csv_path: str | None) -> None:
    from mpdash import export
    if trace_path:
        with open(trace_path, "w") as f:
            json.dump(export.chrome_trace(data), f, default=repr)
    if csv_path:
        with open(csv_path, "w", newline="") as f:
            f.write(export.metrics_csv(data))


def _printer(echo):
    """Live lines for a human: births, exits, and what each process printed. A hub listener
    (under the hub's lock): it only queues, the echo thread writes."""
    reported_exit: set[int] = set()

    def show(name, msg):
        if name == "output":
            echo("out" if msg["stream"] == "out" else "err", f"[{msg['pid']}] {msg['text']}")
        elif name == "proc" and msg["kind"] == "start":
            echo("out", f"  · {msg['role']} {msg['pid']} started")
        elif name == "proc" and msg["kind"] == "exit" and msg["pid"] not in reported_exit:
            # An exit may be announced before anyone reaped the process; wait for the code.
            if msg["exitcode"] is not None or msg["end"] == "killed":
                reported_exit.add(msg["pid"])
                echo("out", f"  · {msg['role']} {msg['pid']} ended: {msg['end']} "
                            f"(exit code {msg['exitcode']})")
    return show


def main(argv=None, prog: str = "mpdash") -> int:
    args = build_parser(prog).parse_args(argv)
    if args.command == "serve":
        return serving.serve(args)
    if args.command == "list":
        return cmd_list()
    if args.command == "run":
        return cmd_run(args)
    if args.command == "watch":
        return watch(args)
    return EXIT_BAD_ARGS
