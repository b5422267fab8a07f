"""A watched program as a program: the source of the script its command runs, read when the
run starts, and the findings that describe it at its end (its processes, how each ended, the
tasks each worker ran), computed from the run's own records like a lesson's analysis.
"""
from __future__ import annotations

import os
import re
import signal

from mpdash.state import Run

MAX_SOURCE_BYTES = 64 * 1024   # the page shows it and the history keeps it: a bound for both
# Interpreter options that take a value as the next argument (python --help); -c and -m end
# the interpreter's options, as does the first argument that is not an option.
_OPTIONS_WITH_VALUE = {"-W", "-X", "--check-hash-based-pycs"}
_PYTHON = re.compile(r"^(python|pypy)[0-9.]*t?(\.exe)?$")


def _target(argv: list[str]) -> tuple[str, str] | None:
    """What a command runs as Python: ("file", PATH) relative to its folder, ("module", NAME),
    ("code", TEXT) for ``-c``; None for anything else (a shell, a binary, stdin)."""
    if not argv:
        return None
    if argv[0].endswith(".py"):
        return "file", argv[0]
    if not _PYTHON.match(os.path.basename(argv[0])):
        return None
    args = iter(argv[1:])
    for arg in args:
        if arg in _OPTIONS_WITH_VALUE:
            next(args, None)
        elif arg in ("-m", "-c"):
            value = next(args, None)
            return (("module", value) if arg == "-m" else ("code", value)) if value else None
        elif arg.startswith(("-m", "-c")):
            return ("module" if arg[1] == "m" else "code"), arg[2:]
        elif arg == "-":
            return None
        elif arg.startswith("-") and arg != "--":
            continue
        else:
            target = next(args, None) if arg == "--" else arg
            return ("file", target) if target else None
    return None


def script_of(argv: list[str], cwd: str, env: dict | None = None) -> str | None:
    """The file a command runs as a Python program: ``python FILE.py``, ``python -m MOD``
    (looked up where that interpreter looks first: the folder it starts in, then PYTHONPATH),
    or ``./FILE.py`` run directly. None for anything else (a ``-c`` string, a shell, a binary)."""
    target = _target(argv)
    if target is None or target[0] == "code":
        return None
    kind, value = target
    return _module_file(value, cwd, env) if kind == "module" else _existing(os.path.join(cwd, value))


def _existing(path: str) -> str | None:
    path = os.path.abspath(path)
    if os.path.isdir(path):   # python DIR runs DIR/__main__.py
        path = os.path.join(path, "__main__.py")
    return path if os.path.isfile(path) else None


def _module_file(module: str, cwd: str, env: dict | None) -> str | None:
    extra = (env or {}).get("PYTHONPATH", "")
    parts = module.split(".")
    for root in [cwd] + [p for p in extra.split(os.pathsep) if p]:
        base = os.path.join(os.path.join(cwd, root), *parts)
        for candidate in (base + ".py", os.path.join(base, "__main__.py")):
            if os.path.isfile(candidate):
                return os.path.abspath(candidate)
    return None


def read_source(argv: list[str], cwd: str, env: dict | None = None) -> dict | None:
    """``{path, text, truncated}`` of the script the command runs (``path`` "-c" for a ``-c``
    string), or None. Read once, now: the file may change while the program runs, and what ran
    is what it said at the start."""
    target = _target(argv)
    if target is not None and target[0] == "code":   # python -c '...': the string is the program
        path, data = "-c", target[1].encode("utf-8", errors="replace")[:MAX_SOURCE_BYTES + 1]
    else:
        path = script_of(argv, cwd, env)
        if path is None:
            return None
        try:
            with open(path, "rb") as f:
                data = f.read(MAX_SOURCE_BYTES + 1)
        except OSError:
            return None
    truncated = len(data) > MAX_SOURCE_BYTES
    if truncated:   # cut at a line's end, so the last line shown is a whole one
        data = data[:MAX_SOURCE_BYTES]
        data = data[:data.rfind(b"\n") + 1] or data
    return {"path": path, "text": data.decode("utf-8", errors="replace"), "truncated": truncated}


_ROLES_PLURAL = {"main": "mains", "child": "children"}
_ROLES = ("main", "worker", "child", "helper")


def _role_order(item):
    return (_ROLES.index(item[0]) if item[0] in _ROLES else len(_ROLES), item[0])


def _plural(n: int, word: str, many: str | None = None) -> str:
    return f"{n} {word if n == 1 else many or word + 's'}"


def _signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"


# How each end kind reads with its signal: a crash is a signal nobody in the run sent.
_BY_SIGNAL = {"crash": "died of", "terminated": "terminated by", "killed": "killed by"}


def _how(proc) -> str:
    """One process's end in words (the contract's end kinds, with the code or signal)."""
    end, code = proc.end, proc.exitcode
    if code is not None and code < 0:
        return f"{_BY_SIGNAL.get(end, 'ended by')} {_signal_name(-code)}"
    if end == "exit" or (end == "crash" and code is not None):
        return f"exited with code {code}"
    if end == "unknown":
        return "reaped by its parent (end unknown)"
    return end or "still running"


def findings(run: Run) -> list[dict]:
    """What the program did, from the run's records. Called at the run's end, with no change
    landing meanwhile (Hub.atomic)."""
    procs = list(run.processes.values())
    if not procs:
        return []
    roles: dict[str, int] = {}
    for p in procs:
        roles[p.role] = roles.get(p.role, 0) + 1
    out = [{"key": "processes", "value": len(procs), "unit": None,
            "text": f"The program ran {_plural(len(procs), 'process', 'processes')}: "
                    + ", ".join(_plural(n, role, _ROLES_PLURAL.get(role))
                                for role, n in sorted(roles.items(), key=_role_order))
                    + f"; at most {peak_alive(procs)} alive at once."}]
    ends: dict[str, int] = {}
    for p in procs:
        how = _how(p)
        ends[how] = ends.get(how, 0) + 1
    ordered = sorted(ends.items(), key=lambda kv: (-kv[1], kv[0]))
    out.append({"key": "ends", "value": {how: n for how, n in ordered}, "unit": None,
                "text": "How they ended: " + "; ".join(f"{n} {how}" for how, n in ordered) + "."})
    tasks: dict[int, int] = {}
    for event in run.events:
        if event["kind"] == "task_end":
            tasks[event["pid"]] = tasks.get(event["pid"], 0) + 1
        elif event["kind"] == "traffic" and event.get("tasks_ended"):
            tasks[event["pid"]] = tasks.get(event["pid"], 0) + event["tasks_ended"]
    if tasks:
        pids = sorted(tasks)
        counts = [tasks[pid] for pid in pids]
        per = ", ".join(f"{pid} ran {tasks[pid]}" for pid in pids)
        # Workers that ran none are part of the answer (a pool that spread its work unevenly).
        idle = sum(1 for p in procs if p.role == "worker" and p.pid not in tasks)
        if idle:
            per += f"; {_plural(idle, 'other worker')} ran none"
        out.append({"key": "tasks_per_worker", "value": dict(zip(map(str, pids), counts)),
                    "unit": None,
                    "text": f"{_plural(sum(counts), 'task')} ran on "
                            f"{_plural(len(pids), 'process', 'processes')}: {per}."})
    return out


def peak_alive(procs) -> int:
    """The most processes alive at one instant, from their start and end times."""
    edges = []
    for p in procs:
        edges.append((p.started_at, 1))
        if p.ended_at is not None:
            edges.append((p.ended_at, -1))
    alive = peak = 0
    for _, step in sorted(edges, key=lambda e: (e[0], e[1])):   # an end before a start at a tie
        alive += step
        peak = max(peak, alive)
    return peak
