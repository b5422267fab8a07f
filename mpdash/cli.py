"""Command line: ``python -m mpdash list | run LESSON [--param k=v]... [--json]``."""
from __future__ import annotations

import argparse
import json
import sys

from mpdash import lessons

EXIT_OK, EXIT_RUN_FAILED, EXIT_BAD_ARGS = 0, 1, 2


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m mpdash",
                                     description="Watch Python multiprocessing in real processes.")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("list", help="lessons and their parameters")
    run = sub.add_parser("run", help="run a lesson headless and print what it measured")
    run.add_argument("lesson", help="lesson id (see: python -m mpdash list)")
    run.add_argument("--param", action="append", default=[], metavar="K=V",
                     help="set a parameter; repeat for several")
    run.add_argument("--json", action="store_true", help="print the whole run object as JSON")
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
    with Dashboard() as dash:
        if not args.json:
            dash.hub.subscribe(_printer(dash))
        try:
            run = dash.engine.start_lesson(lesson.id, params)
            dash.engine.wait(run.id)
        except KeyboardInterrupt:
            dash.engine.stop(run.id, reason="interrupted (Ctrl-C)")
        with dash.hub.lock:
            data = run.to_json()
    if args.json:
        json.dump(data, sys.stdout, indent=2, default=repr)
        print()
    else:
        print(f"\n{data['title']}: {data['state']} in {data['duration']:.2f} s")
        if data["result"] is not None:
            print(f"result: {json.dumps(data['result'])}")
        for finding in data["findings"]:
            print(f"  - {finding['text']}")
        if data["error"]:
            print(f"error: {data['error']}", file=sys.stderr)
    return EXIT_OK if data["state"] == "finished" else EXIT_RUN_FAILED


def _printer(dash):
    """Live lines for a human: births, exits, and what each process printed."""
    reported_exit: set[int] = set()

    def show(name, msg):
        if name == "output":
            stream = sys.stdout if msg["stream"] == "out" else sys.stderr
            print(f"[{msg['pid']}] {msg['text']}", file=stream, flush=True)
        elif name == "proc" and msg["kind"] == "start":
            print(f"  · {msg['role']} {msg['pid']} started", flush=True)
        elif name == "proc" and msg["kind"] == "exit" and msg["pid"] not in reported_exit:
            # An exit may be announced before anyone reaped the process; wait for the code.
            if msg["exitcode"] is not None or msg["end"] == "killed":
                reported_exit.add(msg["pid"])
                print(f"  · {msg['role']} {msg['pid']} ended: {msg['end']} "
                      f"(exit code {msg['exitcode']})", flush=True)
    return show


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "list":
        return cmd_list()
    if args.command == "run":
        return cmd_run(args)
    return EXIT_BAD_ARGS
