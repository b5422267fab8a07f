"""The engine's probe-message table: every protocol kind has a handler that does its job, an
unknown or broken message is ignored, and what a run says reaches viewers when it is said."""
from __future__ import annotations

import os
import socket
import subprocess
import sys
import time

import pytest

from mpdash import protocol
from mpdash.cgroups import Cgroups
from mpdash.engine import handlers, streams
from mpdash.engine.context import CONN, Core, LiveRun
from mpdash.state import Hub, Run
from tests.conftest import wait_until


class FakeReactor:
    """Records registrations instead of selecting: the tests call the handlers themselves."""

    def __init__(self):
        self.registered = {}

    def register(self, fileobj, order, callback):
        self.registered[fileobj if isinstance(fileobj, int) else fileobj.fileno()] = order

    def unregister(self, fileobj):
        self.registered.pop(fileobj if isinstance(fileobj, int) else fileobj.fileno(), None)


def _sleeper():
    return subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])


@pytest.fixture
def rig():
    """A Hub with one live run whose main and one worker are real (sleeping) children."""
    hub = Hub()
    published = []
    hub.subscribe(lambda name, payload: published.append((name, payload)))
    main, worker = _sleeper(), _sleeper()
    core = Core(hub=hub, reactor=FakeReactor(), cgroups=Cgroups(enabled=False),
                server_pid=os.getpid(), tmp="/nonexistent",
                marker="MPDASH_ENGINE=test", on_birth=lambda run, pid: None,
                on_death=lambda run, pid: None, on_finish=lambda run: None)
    run = Run(id="rtest", lesson="x", title="x", params={})
    run.main_pid = main.pid
    live = LiveRun(run=run, popen=main, listener=None, sock_path="", analyze=None, echo=None)
    core.live[run.id] = live
    hub.add_run(run)
    hub.upsert_process(run, main.pid, role="main", name="MainProcess")
    try:
        yield core, live, worker.pid, published
    finally:
        for proc in (main, worker):
            proc.kill()
            proc.wait(timeout=5)
        for fd in live.pidfds.values():
            os.close(fd)


def _send(core, live, k, pid, fields):
    # Built by hand: an event's own field is named "kind", which protocol.message cannot take.
    return handlers.dispatch(core, live, {"k": k, "pid": pid, "t": time.time(), **fields})


def _runs(published):
    return [payload for name, payload in published if name == "run"]


# Each protocol kind: the fields sent, and what must be true afterwards.
PY = {"version": "3.10.13", "executable": "/x/python3.10", "gil_enabled": True,
      "default_start_method": "fork"}


def _check_hello(core, live, worker, published):
    proc = live.run.processes[worker]
    assert (proc.ppid, proc.role, proc.name) == (live.run.main_pid, "worker", "W-1")
    assert worker in live.pidfds and live.pidfds[worker] in core.reactor.registered
    assert live.run.python is None   # only the main's word on its interpreter is the run's


def test_the_mains_hello_gives_the_run_its_interpreter(rig):
    core, live, worker, published = rig
    main = live.run.main_pid
    assert _send(core, live, protocol.HELLO, main, dict(role="main", ppid=os.getpid(),
                                                        via="exec", python={**PY, "x": 1}))
    assert live.run.python == PY                      # the documented keys only
    assert _runs(published)[-1]["python"] == PY       # viewers hear it at once


def _check_spawned(core, live, worker, published):
    proc = live.run.processes[worker]
    assert (proc.name, proc.daemon, proc.start_method) == ("W-2", True, "spawn")
    assert proc.ppid == live.run.main_pid


def _check_child(core, live, worker, published):
    assert live.run.processes[worker].name == "W-3"


def _check_exiting(core, live, worker, published):
    assert live.codes[worker] == 3


def _check_reaped(core, live, worker, published):
    # The exit was announced before its code was known: the code amends it, in an exit message.
    assert live.codes[worker] == -9
    proc = live.run.processes[worker]
    assert (proc.exitcode, proc.end) == (-9, "crash")
    last = [m for name, m in published if name == "proc"][-1]
    assert (last["kind"], last["pid"], last["exitcode"], last["end"]) == ("exit", worker, -9, "crash")


def _check_terminate(core, live, worker, published):
    assert worker in live.run.terminated
    assert live.run.events[-1]["kind"] == "terminate"
    assert live.run.events[-1]["channel"] == str(worker)


def _check_out(core, live, worker, published):
    line = live.run.output[-1]
    assert (line["pid"], line["stream"], line["text"]) == (worker, "err", "hi there")


def _check_result(core, live, worker, published):
    assert live.run.result == [1, 4, 9]
    assert _runs(published)[-1]["result"] == [1, 4, 9]   # viewers hear it now, not at the end


def _check_error(core, live, worker, published):
    assert live.run.error == "Traceback: boom"
    assert _runs(published)[-1]["error"] == "Traceback: boom"


def _check_finding(core, live, worker, published):
    finding = {"key": "speedup", "value": 1.9, "text": "1.9x faster", "unit": "x", "headline": True}
    assert live.run.findings == [finding]
    assert _runs(published)[-1]["findings"] == [finding]


def _check_mark(core, live, worker, published):
    assert live.run.marks[-1][1:] == ("phase 2", {"n": 2})
    assert live.run.events[-1]["kind"] == "mark" and live.run.events[-1]["detail"] == "phase 2"


def _check_event(core, live, worker, published):
    event = live.run.events[-1]
    assert (event["kind"], event["channel"], event["pid"]) == ("put", "Queue-1", worker)
    assert event["extra"] == 7 and event["run"] == live.run.id   # own fields kept, id not


CASES = {
    protocol.HELLO: (lambda main: dict(role="worker", ppid=main, via="fork", name="W-1",
                                       python=PY, argv=None), _check_hello),
    protocol.SPAWNED: (lambda main: dict(child=None, name="W-2", daemon=True, method="spawn",
                                         role="worker"), _check_spawned),
    protocol.CHILD: (lambda main: dict(name="W-3", daemon=False), _check_child),
    protocol.EXITING: (lambda main: dict(code=3), _check_exiting),
    protocol.REAPED: (lambda main: dict(child=None, code=-9), _check_reaped),
    protocol.TERMINATE: (lambda main: dict(child=None, sig=15), _check_terminate),
    protocol.OUT: (lambda main: dict(s="err", x="hi there"), _check_out),
    protocol.RESULT: (lambda main: dict(value=[1, 4, 9]), _check_result),
    protocol.ERROR: (lambda main: dict(text="Traceback: boom"), _check_error),
    protocol.FINDING: (lambda main: dict(key="speedup", value=1.9, text="1.9x faster",
                                         unit="x", headline=True), _check_finding),
    protocol.MARK: (lambda main: dict(label="phase 2", detail={"n": 2}), _check_mark),
    protocol.EVENT: (lambda main: dict(kind="put", channel="Queue-1", msg=1, size=8,
                                       detail="1", extra=7, run="forged"), _check_event),
}


def test_the_table_covers_exactly_the_protocol_kinds():
    assert set(handlers.HANDLERS) == set(protocol.KINDS)
    assert set(CASES) == set(protocol.KINDS)   # a new kind needs a case below too


@pytest.mark.parametrize("kind", protocol.KINDS)
def test_each_kind_does_its_job(rig, kind):
    core, live, worker, published = rig
    make, check = CASES[kind]
    fields = make(live.run.main_pid)
    assert set(fields) - {"extra", "run"} == set(protocol.FIELDS[kind])  # what the probe sends
    # Messages about a child come from its parent; the others from the worker itself.
    sender = live.run.main_pid if "child" in fields else worker
    if "child" in fields:
        fields["child"] = worker
    if kind == protocol.HELLO:
        fields["ppid"] = live.run.main_pid
    if kind == protocol.REAPED:
        core.hub.upsert_process(live.run, worker, ended_at=1.0)
    seq = core.hub.seq
    assert _send(core, live, kind, sender, fields) is True
    check(core, live, worker, published)
    if kind != protocol.EXITING:   # a live process's code is only noted until its exit
        assert core.hub.seq > seq and live.run.seq > seq   # every change is numbered


def test_an_unknown_kind_is_ignored(rig):
    core, live, worker, published = rig
    before, seq = len(published), core.hub.seq
    assert _send(core, live, "from-a-newer-probe", worker, {"anything": 1}) is False
    assert handlers.dispatch(core, live, {"k": None}) is False
    assert len(published) == before and core.hub.seq == seq


def test_a_connection_skips_what_it_cannot_use_and_keeps_the_rest(rig):
    """Through the real line reader: an unknown kind, a line that is not JSON, a message whose
    handler fails (no ``code``) and a message cut across two reads."""
    core, live, worker, published = rig
    ours, theirs = socket.socketpair()
    ours.setblocking(False)
    live.conns[ours.fileno()] = (ours, protocol.LineBuffer())
    core.reactor.register(ours, CONN, None)
    try:
        good = protocol.encode(protocol.message(protocol.OUT, worker, s="out", x="kept"))
        theirs.sendall(protocol.encode(protocol.message("nope", worker)) + b"{not json\n"
                       + protocol.encode(protocol.message(protocol.EXITING, worker))
                       + good[:10])
        streams.on_conn(core, live, ours)      # must not raise
        assert not any(l["text"] == "kept" for l in live.run.output)
        theirs.sendall(good[10:])
        theirs.close()
        streams.on_conn(core, live, ours)
        assert live.run.output[-1]["text"] == "kept"
        assert ours.fileno() == -1 and not live.conns   # closed at its end, unregistered
        assert worker not in live.codes
    finally:
        ours.close()
        theirs.close()


def _documented(heading_or_event: str) -> set[str]:
    """Field names docs/API.md gives for the Proc record, or for the ``proc`` message."""
    import pathlib
    import re
    text = (pathlib.Path(__file__).resolve().parent.parent / "docs" / "API.md").read_text()
    if heading_or_event == "Proc":
        body = text.split("### Proc\n", 1)[1].split("}", 1)[0]
    else:
        body = text.split("| `proc` | `{", 1)[1].split("}", 1)[0]
    return set(re.findall(r"([a-z_]+)(?::[^,]*)?(?:,|$)", body.replace("\n", " ").strip("{` ")))


def test_a_process_record_and_its_message_have_the_documented_shape():
    from mpdash.state import Proc
    proc = Proc(pid=7, ppid=1, name="W", started_at=1.0, ended_at=2.0, exitcode=0, end="exit")
    assert set(proc.to_json()) == _documented("Proc")
    assert Proc.from_json(proc.to_json()) == proc          # what the store writes, it reads back
    exit_msg = proc.message("rX", "exit")
    assert set(exit_msg) == _documented("proc") | {"seq"} and exit_msg["t"] == 2.0
    assert proc.message("rX", "start")["t"] == 1.0
    assert proc["role"] == "worker" and proc.get("nope", 5) == 5   # analyses read it by key


def test_a_child_started_by_subprocess_is_a_child_named_by_its_command(rig):
    """``spawned`` with role "child" (mpdash/inrun/reaps.py): seen first by a /proc scan (named
    by its cmdline then) or not, it ends up a child with the command its parent started."""
    core, live, worker, published = rig
    main = live.run.main_pid
    assert _send(core, live, protocol.SPAWNED, main, dict(child=worker, name="sleep 1.5",
                                                          daemon=False, method=None, role="child"))
    proc = live.run.processes[worker]
    assert (proc.role, proc.name, proc.ppid, proc.start_method) == ("child", "sleep 1.5", main, None)
    # A multiprocessing child a scan saw first (as a child) becomes a worker when it says so.
    core.hub.upsert_process(live.run, worker, role="child", name="python -c ...")
    assert _send(core, live, protocol.CHILD, worker, dict(name="Process-1", daemon=False))
    assert (proc.role, proc.name) == ("worker", "Process-1")


def test_a_child_born_without_a_name_is_named_by_its_command_line(rig):
    from mpdash.engine import reaping
    core, live, worker, published = rig
    # A process seen mid-exec has an empty command line for a moment (the product renames it at
    # the next scan); this test is about the naming, so it waits until the exec is done.
    assert wait_until(lambda: b"time.sleep" in open(f"/proc/{worker}/cmdline", "rb").read(), 5)
    reaping.birth(core, live, worker, ppid=live.run.main_pid, role=reaping.CHILD)
    name = live.run.processes[worker].name
    assert name.startswith(sys.executable) and "time.sleep(30)" in name


def test_an_end_nobody_reported_is_unknown_at_the_runs_end(rig):
    """Its parent reaped it and told no one: never a silent null (API.md, ``end``)."""
    from mpdash.engine import reaping
    core, live, worker, published = rig
    core.hub.upsert_process(live.run, worker, ended_at=time.time())
    reaping.settle_unknown(core, live)
    proc = live.run.processes[worker]
    assert (proc.exitcode, proc.end) == (None, "unknown")
    last = [m for name, m in published if name == "proc"][-1]
    assert (last["pid"], last["kind"], last["end"]) == (worker, "exit", "unknown")
    main = live.run.processes[live.run.main_pid]
    assert main.ended_at is None and main.end is None   # a live process is left alone


def test_a_plain_fork_already_reaped_keeps_its_name_and_its_code(rig):
    """A short-lived ``os.fork()`` child: its parent's ``reaped`` and its own hello arrive on two
    connections, in either order, often after it is gone from /proc. It names itself in the
    hello (mpdash/inrun/lifecycle.py), so the row still says what it ran and how it ended."""
    core, live, _, published = rig
    main = live.run.main_pid
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait(timeout=10)   # reaped: /proc/<pid> no longer exists
    assert _send(core, live, protocol.REAPED, main, dict(child=gone.pid, code=3))
    assert _send(core, live, protocol.HELLO, gone.pid,
                 dict(role="child", ppid=main, via="fork", argv=["python", "children.py"]))
    proc = live.run.processes[gone.pid]
    assert (proc.name, proc.role, proc.ppid) == ("python children.py", "child", main)
    assert (proc.exitcode, proc.end) == (3, "crash") and proc.ended_at is not None


def test_a_plain_fork_still_there_is_named_by_what_it_runs_now(rig):
    """Its hello's ``argv`` is from before any exec: /proc, while readable, wins; and it stays
    marked for renaming, since it may exec later."""
    core, live, worker, published = rig
    assert wait_until(lambda: b"time.sleep" in open(f"/proc/{worker}/cmdline", "rb").read(), 5)
    assert _send(core, live, protocol.HELLO, worker,
                 dict(role="child", ppid=live.run.main_pid, via="fork", argv=["python", "x.py"]))
    proc = live.run.processes[worker]
    assert "time.sleep(30)" in proc.name and worker in live.named_by_proc


def test_a_zombie_keeps_its_name_when_a_scan_looks_again(rig):
    """Killed, not yet reaped by its parent: its command line is gone and only a 15-character
    ``comm`` is left. The rename after exec (reaping.rename) must not take that for a new
    program (a SIGTERMed fork of test_anyprog's children.py became "python3.13")."""
    from mpdash.engine import reaping
    core, live, _, published = rig
    zombie = subprocess.Popen([sys.executable, "-c", "pass"])   # never waited for until the end
    try:
        assert wait_until(lambda: open(f"/proc/{zombie.pid}/stat").read().split(") ")[1][0] == "Z", 10)
        core.hub.upsert_process(live.run, zombie.pid, role="child", name="python children.py")
        live.named_by_proc.add(zombie.pid)
        reaping.rename(core, live, zombie.pid)
        assert live.run.processes[zombie.pid].name == "python children.py"
    finally:
        zombie.wait(timeout=10)
