"""What a run's processes say: one function per protocol kind, in a table.

Each handler is ``fn(core, live, msg, pid, t)``; ``dispatch`` looks the kind up. A kind this
server does not know (a newer probe) is ignored. Adding a kind means adding it to
``mpdash.protocol`` and a function here (tests/test_engine_handlers.py checks the two agree).
"""
from __future__ import annotations

import time
from typing import Callable

from mpdash import procfs
from mpdash import protocol as p
from mpdash.engine import reaping
from mpdash.engine.context import Core, LiveRun


def output(core: Core, live: LiveRun, pid: int, stream: str, text: str, t: float) -> None:
    """One line printed by a process of the run (or by anything writing to its fd 1/2)."""
    core.hub.add_output(live.run, pid, p.STDERR if stream == p.STDERR else p.STDOUT, text, t)
    if live.echo is not None:
        live.echo(stream, text)


def _out(core, live, msg, pid, t):
    output(core, live, pid, msg.get("s", p.STDOUT), str(msg.get("x", "")), t)


PYTHON_KEYS = ("version", "executable", "gil_enabled", "default_start_method")


def _hello(core, live, msg, pid, t):
    run, hub = live.run, core.hub
    role = msg.get("role", "worker")
    info = msg.get("python")
    if pid == run.main_pid and isinstance(info, dict):   # the interpreter the run really ran
        hub.set_python(run, {k: info.get(k) for k in PYTHON_KEYS})
    proc = run.processes.get(pid)
    name = msg.get("name")
    if role == reaping.CHILD and name is None and (proc is None or proc.name is None):
        # A plain fork is named by its command line: /proc's while it is there (it may have
        # exec'd since), else the one it sent (gone or a zombie before we could read).
        name = procfs.command_line(pid) or _spelt(msg.get("argv")) or procfs.command_name(pid)
        live.named_by_proc.add(pid)   # an exec renames it at the next scan
    if proc is None:
        reaping.birth(core, live, pid, ppid=msg.get("ppid"), role=role, t=t, name=name)
        return
    # The process's own word on its parent wins: under forkserver the parent is
    # the forkserver, not the process that called start().
    fields = {"ppid": msg.get("ppid", proc.ppid)}
    if proc.role != "main":
        fields["role"] = role
    if name:
        fields["name"] = name
    if any(getattr(proc, k) != v for k, v in fields.items()):
        hub.publish_proc(run, hub.upsert_process(run, pid, **fields), "update")


def _spelt(argv) -> str | None:
    if isinstance(argv, list) and argv and all(isinstance(a, str) for a in argv):
        return p.command_text(argv)
    return None


def _spawned(core, live, msg, pid, t):
    run, hub = live.run, core.hub
    child = int(msg["child"])
    role = msg.get("role") or "worker"   # "child": started by subprocess, named by its command
    fields = {"name": msg.get("name"), "daemon": bool(msg.get("daemon")),
              "start_method": msg.get("method")}
    fields = {k: v for k, v in fields.items() if v is not None}
    live.named_by_proc.discard(child)   # its parent's word on what it runs wins
    if child in run.processes:
        if run.processes[child].role in (reaping.CHILD, "worker"):   # a scan may have seen it
            fields["role"] = role
        proc = hub.upsert_process(run, child, **fields)  # ppid: the child knows best
        hub.publish_proc(run, proc, "update")
    else:
        reaping.birth(core, live, child, ppid=pid, role=role, t=t, **fields)


def _child(core, live, msg, pid, t):
    run, hub = live.run, core.hub
    if pid in run.processes:
        fields = {"name": msg.get("name"), "daemon": bool(msg.get("daemon"))}
        if run.processes[pid].role == reaping.CHILD:   # a scan saw it before it said so
            fields["role"] = "worker"
        proc = hub.upsert_process(run, pid, **fields)
        hub.publish_proc(run, proc, "update")
    else:
        reaping.birth(core, live, pid, role="worker", t=t, name=msg.get("name"),
                      daemon=bool(msg.get("daemon")))


def _exiting(core, live, msg, pid, t):
    reaping.exit_code(core, live, pid, int(msg["code"]))


def _reaped(core, live, msg, pid, t):
    reaping.exit_code(core, live, int(msg["child"]), int(msg["code"]))


def _terminate(core, live, msg, pid, t):
    child = int(msg["child"])
    live.run.terminated.add(child)
    core.hub.add_event(live.run, {"t": t, "pid": pid, "kind": "terminate", "channel": str(child),
                                  "detail": f"{pid} sent signal {msg.get('sig')} to {child}"})


def _result(core, live, msg, pid, t):
    core.hub.set_result(live.run, msg.get("value"))


def _error(core, live, msg, pid, t):
    core.hub.set_error(live.run, str(msg.get("text", "")))


def _finding(core, live, msg, pid, t):
    core.hub.add_findings(live.run, [{"key": str(msg.get("key")), "value": msg.get("value"),
                                      "text": str(msg.get("text", "")), "unit": msg.get("unit"),
                                      "headline": bool(msg.get("headline"))}])


def _mark(core, live, msg, pid, t):
    core.hub.add_mark(live.run, t, str(msg.get("label")), msg.get("detail") or {}, pid)


def _event(core, live, msg, pid, t):
    event = {k: msg.get(k) for k in p.FIELDS[p.EVENT]}
    event.update(t=t, pid=pid)
    for k, v in msg.items():   # a kind's own extra fields travel on with it
        if k not in event and k != "k":
            event[k] = v
    core.hub.add_event(live.run, event)


HANDLERS: dict[str, Callable] = {
    p.HELLO: _hello, p.SPAWNED: _spawned, p.CHILD: _child, p.EXITING: _exiting,
    p.REAPED: _reaped, p.TERMINATE: _terminate, p.OUT: _out, p.RESULT: _result,
    p.ERROR: _error, p.FINDING: _finding, p.MARK: _mark, p.EVENT: _event,
}


def dispatch(core: Core, live: LiveRun, msg: dict) -> bool:
    """Handle one decoded message; False for a kind without a handler (ignored)."""
    handler = HANDLERS.get(msg.get("k"))
    if handler is None:
        return False
    handler(core, live, msg, int(msg.get("pid", 0)), float(msg.get("t") or time.time()))
    return True
