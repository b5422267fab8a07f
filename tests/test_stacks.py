"""Where is it stuck? Stacks of every process of a live run, on request and on a stall (issue 11).

Every case is a real hang in real processes (tests/programs/), asked through the engine, the
HTTP route or ``mpdash watch``; every test proves no process is left behind.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time

import pytest

from mpdash import stacks as stacks_mod
from mpdash.dashboard import Dashboard
from mpdash.stacks import parse_dump
from mpdash.stall import StallDetector
from mpdash.state import Limits, Run
from tests.conftest import wait_until
from tests.leaks import assert_none_left

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PROGRAMS = os.path.join(ROOT, "tests", "programs")


def program(name: str, *args: str) -> list[str]:
    return [sys.executable, os.path.join(PROGRAMS, name), *args]


@pytest.fixture
def quiet_dash():
    """A dashboard that takes no stall Snapshot by itself (the request tests count them)."""
    dash = Dashboard(Limits(), stall=0)
    yield dash
    dash.close()
    assert_none_left(dash)


@pytest.fixture
def stall_dash():
    dash = Dashboard(Limits(), stall=1.5)
    yield dash
    dash.close()
    assert_none_left(dash)


def wait_for(predicate, timeout=10.0, what="condition"):
    value = wait_until(predicate, timeout=timeout)
    assert value, f"timed out waiting for {what}"
    return value


def functions(thread: dict) -> list[str]:
    return [f["function"] for f in thread["frames"]]


def proc_of(snapshot: dict, pid: int) -> dict:
    return next(p for p in snapshot["processes"] if p["pid"] == pid)


def settle(dash, run, count: int, *, until=None, timeout=15.0):
    """Wait for ``count`` live processes, then for ``until(snapshot)`` to hold on a Snapshot
    (a hang is reached some moments after the processes are up); return that Snapshot."""
    wait_for(lambda: len(run.live_pids()) >= count, timeout, f"{count} processes")
    last = None

    def ready():
        nonlocal last
        last = dash.stacks.take(run.id)
        return last if until is None or until(last) else None
    try:
        return wait_for(ready, timeout, "the hang")
    except AssertionError:
        raise AssertionError(f"never reached the hang; last snapshot: {json.dumps(last)[:3000]}")


# ----------------------------------------------------------------------------- real hangs

def test_join_before_drain_main_waits_in_join_and_the_feeder_in_a_pipe_write(quiet_dash):
    dash = quiet_dash
    run = dash.engine.start_command(program("join_before_drain.py"), timeout=30)

    def hung(snap):
        """The whole deadlock, which holds for good once reached: the feeder writing the pipe,
        the child's exit joining it, the main joining the child. (The feeder blocks first: a
        Snapshot then can catch the child still on its way to its exit.)"""
        main = [p for p in snap["processes"] if p["pid"] == run.main_pid]
        child = [p for p in snap["processes"] if p["pid"] != run.main_pid]
        if not main or not child:
            return False
        threads = {t["main"]: functions(t) for t in child[0]["threads"]}
        return "_send_bytes" in threads.get(False, ()) and "join" in threads.get(True, ()) and \
            any("join" in functions(t) for t in main[0]["threads"])
    snap = settle(dash, run, 2, until=hung)
    assert snap["reason"] == "request" and snap["run"] == run.id and snap["seq"] > 0
    main = proc_of(snap, run.main_pid)
    assert main["python"] is True and main["state"] == "S", main
    (main_thread,) = main["threads"]
    assert main_thread["main"] is True and main_thread["name"] == "MainThread"
    # outermost first: the program's own line, then join, innermost last
    assert main_thread["frames"][0]["file"].endswith("join_before_drain.py")
    assert main_thread["frames"][0]["function"] == "<module>"
    assert main_thread["frames"][0]["library"] is False
    assert "join" in functions(main_thread) and main_thread["frames"][-1]["library"] is True
    # the kernel's name for a wait varies by version (do_wait, kernel_wait4...); unreadable: None
    assert main["wchan"] is None or "wait" in main["wchan"], main
    child = next(p for p in snap["processes"] if p["pid"] != run.main_pid)
    assert child["name"] == "producer" and child["python"] is True
    feeder = next(t for t in child["threads"] if not t["main"])
    assert functions(feeder)[-3:] == ["send_bytes", "_send_bytes", "_send"], child
    assert "_feed" in functions(feeder)
    child_main = next(t for t in child["threads"] if t["main"])
    assert "join" in functions(child_main)   # the child's exit joins its feeder thread
    dash.engine.stop(run.id)
    data = dash.hub.snapshot(run)
    assert data["stacks"] and data["stacks"][-1]["seq"] == snap["seq"]


def test_fork_with_a_held_lock_the_child_waits_in_the_function_that_takes_it(quiet_dash):
    dash = quiet_dash
    run = dash.engine.start_command(program("fork_held_lock.py"), timeout=30)

    def hung(snap):   # the child stuck in take_lock, and the main already joining it
        main = [p for p in snap["processes"] if p["pid"] == run.main_pid]
        child = [p for p in snap["processes"] if p["pid"] != run.main_pid]
        return main and child and child[0]["threads"] and \
            child[0]["threads"][-1]["frames"][-1:] and \
            child[0]["threads"][-1]["frames"][-1]["function"] == "take_lock" and \
            any("join" in functions(t) for t in main[0]["threads"])
    snap = settle(dash, run, 2, until=hung)
    child = next(p for p in snap["processes"] if p["pid"] != run.main_pid)
    assert child["name"] == "taker"
    (thread,) = child["threads"]        # only the forking thread lives on in a fork
    innermost = thread["frames"][-1]
    assert innermost["function"] == "take_lock" and innermost["file"].endswith("fork_held_lock.py")
    assert stacks_mod.user_frame(thread) == innermost
    assert child["wchan"] is None or "futex" in child["wchan"]
    main = proc_of(snap, run.main_pid)
    names = sorted(functions(t)[-1] for t in main["threads"])
    assert "join" in " ".join(f for t in main["threads"] for f in functions(t))
    assert any("hold" in functions(t) for t in main["threads"]), names
    dash.engine.stop(run.id)


def test_a_non_python_child_reports_its_kernel_wait(quiet_dash):
    dash = quiet_dash
    run = dash.engine.start_command(program("sleep_child.py", "30"), timeout=30)

    def found(snap):
        return len(snap["processes"]) == 2 and all(p["state"] == "S" for p in snap["processes"])
    snap = settle(dash, run, 2, until=found)
    sleeper = next(p for p in snap["processes"] if p["pid"] != run.main_pid)
    assert sleeper["python"] is False and sleeper["threads"] == []
    assert sleeper["wchan"] and "sleep" in sleeper["wchan"], sleeper   # hrtimer_nanosleep
    assert sleeper["syscall"] in ("clock_nanosleep", "nanosleep", None)
    main = proc_of(snap, run.main_pid)
    assert main["python"] is True
    assert "run" in functions(main["threads"][0]) and main["threads"][0]["frames"][0]["file"] \
        .endswith("sleep_child.py")
    dash.engine.stop(run.id)
    assert run.processes[sleeper["pid"]]["ended_at"] is not None


def test_a_program_with_its_own_handler_for_the_signal_both_run(quiet_dash):
    dash = quiet_dash
    run = dash.engine.start_command(program("own_urg_handler.py", "20"), timeout=30)
    wait_for(lambda: any(l["text"].startswith("previous:") for l in list(run.output)),
             what="the handler installed")
    snap = dash.stacks.take(run.id)
    main = proc_of(snap, run.main_pid)
    assert main["python"] is True
    assert main["threads"][0]["frames"][0]["file"].endswith("own_urg_handler.py")
    dash.engine.wait(run.id, timeout=20)
    texts = [l["text"] for l in run.output]
    # the program saw what it would see without mpdash, and its handler ran after our dump
    assert "before: <Handlers.SIG_DFL: 0>" in texts, texts
    assert "previous: <Handlers.SIG_DFL: 0>; now: on_urg" in texts, texts
    assert "own handler ran: True" in texts, texts
    assert run.state == "finished", run.error


def test_a_request_racing_with_the_end_gets_a_snapshot_or_a_clean_409(quiet_dash, client_for):
    dash = quiet_dash
    client = client_for(dash)
    answers: list[int] = []
    for _ in range(3):
        run = dash.engine.start_command([sys.executable, "-c", "import time; time.sleep(0.3)"],
                                        timeout=10)
        started = time.monotonic()
        while time.monotonic() - started < 5:
            response = client.post(f"/api/runs/{run.id}/stacks")
            answers.append(response.status_code)
            body = response.get_json()
            if response.status_code == 200:
                assert body["run"] == run.id and isinstance(body["processes"], list)
            else:
                assert response.status_code == 409 and body["error"], body
                break
        assert answers[-1] == 409, "the run never ended"
        dash.engine.wait(run.id, timeout=10)
    assert set(answers) <= {200, 409} and 200 in answers


# ----------------------------------------------------------------------------- contract

@pytest.fixture
def client_for():
    from mpdash.web import create_app
    return lambda dash, config=None: create_app(dash, {"TESTING": True, **(config or {})}) \
        .test_client()


def test_route_answers_404_for_an_unknown_run_and_403_for_a_viewer(quiet_dash, client_for):
    assert client_for(quiet_dash).post("/api/runs/nope/stacks").status_code == 404
    viewer = client_for(quiet_dash, {"MPDASH_TOKEN": "p" * 20, "MPDASH_VIEWER_TOKEN": "v" * 20})
    run = quiet_dash.engine.start_command(program("sleep_child.py", "5"), timeout=10)
    try:
        response = viewer.post(f"/api/runs/{run.id}/stacks", headers={"Authorization": "Bearer " + "v" * 20})
        assert response.status_code == 403
    finally:
        quiet_dash.engine.stop(run.id)


def test_a_snapshot_is_published_kept_exported_and_stored(tmp_path):
    from mpdash import export
    got = []
    with Dashboard(Limits(), stall=0, data_dir=str(tmp_path)) as dash:
        dash.hub.subscribe(lambda name, payload: name == "stacks" and got.append(payload))
        run = dash.engine.start_command(program("sleep_child.py", "30"), timeout=30)
        wait_for(lambda: len(run.live_pids()) == 2, what="both processes")
        snap = dash.stacks.take(run.id)
        assert got and got[-1] is snap
        dash.engine.stop(run.id)
        data = dash.hub.snapshot(run)
        assert [s["seq"] for s in data["stacks"]] == [snap["seq"]]
        assert run.to_json(since=snap["seq"])["stacks"] == []
        trace = export.chrome_trace(data)
        instants = [e for e in trace["traceEvents"] if e.get("cat") == "stacks"]
        assert {e["pid"] for e in instants} == {p["pid"] for p in snap["processes"]}
        main_instant = next(e for e in instants if e["pid"] == run.main_pid)
        assert main_instant["args"]["threads"][0]["frames"][0]["file"].endswith("sleep_child.py")
        with pytest.raises(stacks_mod.RunEnded):
            dash.stacks.take(run.id)
    assert_none_left(os.getpid())
    with Dashboard(Limits(), stall=0, data_dir=str(tmp_path)) as again:
        stored = again.hub.get(run.id)
        assert [s["seq"] for s in stored.stacks] == [snap["seq"]]
        assert stored.stacks[0]["processes"] == snap["processes"]


# ----------------------------------------------------------------------------- stall

def test_a_stalled_run_takes_its_own_snapshot_once_and_says_so(stall_dash):
    dash = stall_dash
    run = dash.engine.start_command(program("join_before_drain.py"), timeout=30)
    wait_for(lambda: any(e["kind"] == "stall" for e in list(run.events)), 15, "a stall event")
    time.sleep(2.5)     # the same stall goes on: no second Snapshot
    data = dash.hub.snapshot(run)
    stalls = [e for e in data["events"] if e["kind"] == "stall"]
    snaps = [s for s in data["stacks"] if s["reason"] == "stall"]
    assert len(stalls) == 1 and len(snaps) == 1, (stalls, snaps)
    quiet = float(stalls[0]["detail"].split()[3])
    assert stalls[0]["detail"] == f"no progress for {quiet:.1f} s" and 1.5 <= quiet < 4
    assert stalls[0]["msg"] == snaps[0]["seq"]
    assert {p["pid"] for p in snaps[0]["processes"]} == set(run.live_pids())
    dash.engine.stop(run.id)


def test_a_busy_run_is_not_a_stall(stall_dash):
    dash = stall_dash
    code = "import time\nend = time.monotonic() + 4\nwhile time.monotonic() < end: pass"
    run = dash.engine.start_command([sys.executable, "-c", code], timeout=20)
    dash.engine.wait(run.id, timeout=20)
    assert run.state == "finished"
    assert not [e for e in run.events if e["kind"] == "stall"] and not run.stacks


class _FakeRun:
    def __init__(self):
        self.run = Run(id="r", lesson="watch", title="t", params={}, started_at=100.0)
        self.seq = 0

    def add(self, items, **fields):
        self.seq += 1
        self.run.seq = self.seq
        items.append({"seq": self.seq, **fields})


def test_stall_detector_counts_cpu_output_and_events_as_progress_and_fires_once():
    fake = _FakeRun()
    detector = StallDetector(fake.run, stall=3.0)
    frames = fake.run.frames
    for t in (100.5, 101.0, 102.0):
        fake.add(frames, t=t, cpu=[0.0, 1.9])
    detector.observe(fake.run)
    assert detector.check(102.9) is None                       # 2.9 s only
    assert detector.check(103.1) == pytest.approx(3.1)         # no progress since the start
    assert detector.check(104.0) is None                       # once per stall
    fake.add(frames, t=104.2, cpu=[2.5, 0.0])                  # one process used CPU
    detector.observe(fake.run)
    assert detector.check(106.0) is None
    fake.add(frames, t=107.0, cpu=[0.0, 0.0])
    detector.observe(fake.run)
    assert detector.check(107.3) == pytest.approx(3.1)
    fake.add(fake.run.output, t=107.5, pid=1, stream="out", text="hi")
    fake.add(fake.run.events, t=107.6, kind="stall", detail="x")   # its own event is not progress
    fake.add(frames, t=110.0, cpu=[0.0, 0.0])
    detector.observe(fake.run)
    assert detector.last_progress == 107.5
    assert detector.check(110.6) == pytest.approx(3.1)
    assert StallDetector(fake.run, 3.0).check(200.0) is None   # no recent sample: not measured


# ----------------------------------------------------------------------------- parsing

DUMP = """Thread 0x00007fa00fe396c0 (most recent call first):
  File "/usr/lib/python3.11/multiprocessing/connection.py", line 368 in _send
  File "/usr/lib/python3.11/threading.py", line 973 in _bootstrap

Current thread 0x00007fa010a96b80 (most recent call first):
  File "/usr/lib/python3.11/threading.py", line ??? in join
  File "/home/u/x.py", line 12 in <module>
"""


def test_parse_dump_orders_frames_outermost_first_and_knows_when_it_is_complete():
    threads, complete = parse_dump(DUMP)
    assert complete and len(threads) == 2
    feeder, main = threads
    assert feeder["id"] == "0x7fa00fe396c0" and not feeder["main"] and feeder["name"] is None
    assert main["main"] and main["name"] == "MainThread"
    assert main["frames"] == [{"file": "/home/u/x.py", "line": 12, "function": "<module>"},
                              {"file": "/usr/lib/python3.11/threading.py", "line": None,
                               "function": "join"}]
    assert parse_dump(DUMP[:-1])[1] is False                    # last line unfinished
    cut = DUMP.index("Current") + len("Current thread 0x00007fa010a96b80 (most recent call first):\n")
    assert parse_dump(DUMP[:cut])[1] is False                   # a header with nothing under it
    assert parse_dump("")[1] is False
    named = DUMP.replace("0x00007fa00fe396c0 (", "0x00007fa00fe396c0 <worker> (")
    assert len(parse_dump(named)[0]) == 2


@pytest.mark.parametrize("version", ["3.10.13", "3.11.7", "3.12.1", "3.13.0"])
def test_the_in_run_half_dumps_every_thread_on_each_cpython(version, tmp_path):
    python = f"/root/.pyenv/versions/{version}/bin/python{version.rsplit('.', 1)[0]}"
    if not os.path.exists(python):
        pytest.skip(f"no CPython {version} here")
    code = (
        "import os, signal, threading, time, sys\n"
        "from mpdash.inrun import stacks\n"
        "assert stacks.install()\n"
        "done = threading.Event()\n"
        "def worker(): done.wait(10)\n"
        "t = threading.Thread(target=worker); t.start()\n"
        "pid = os.fork()\n"
        "if pid == 0:\n"
        "    stacks.after_fork_in_child(); os.kill(os.getpid(), stacks.SIGNAL); time.sleep(0.2)\n"
        "    os._exit(0)\n"
        "os.waitpid(pid, 0)\n"
        "os.kill(os.getpid(), stacks.SIGNAL); time.sleep(0.1)\n"
        "print(signal.getsignal(signal.SIGURG) == signal.SIG_DFL, pid); done.set(); t.join()\n")
    env = {**os.environ, "MPDASH_STACKS": str(tmp_path), "PYTHONPATH": ROOT}
    env.pop("MPDASH_EVENTS", None)
    out = subprocess.run([python, "-c", code], env=env, capture_output=True, text=True,
                         timeout=30)
    assert out.returncode == 0, out.stderr
    default, child = out.stdout.split()
    assert default == "True"     # the program sees the disposition it would see without us
    files = {p.name: p.read_text() for p in tmp_path.iterdir()}
    child_threads, complete = parse_dump(files.pop(f"{child}.txt"))
    assert complete and len(child_threads) == 1 and child_threads[0]["main"]
    (main_text,) = files.values()
    threads, complete = parse_dump(main_text)
    assert complete and len(threads) == 2, main_text
    assert any(f["function"] == "worker" for f in threads[0]["frames"])
    assert threads[1]["main"] and threads[1]["frames"][-1]["function"] == "<module>"


# ----------------------------------------------------------------------------- watch

def _watch(prog: str, data_dir) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "mpdash", "watch", "--exit", "--json", "--timeout", "15",
         "--port", "0", "--data", str(data_dir), "--", *program(prog)],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def test_watch_prints_the_stall_snapshot_of_both_hangs_and_carries_it_in_json(tmp_path):
    watches = {name: _watch(name, tmp_path / name) for name in
               ("join_before_drain.py", "fork_held_lock.py")}
    try:
        results = {name: w.communicate(timeout=60) for name, w in watches.items()}
    finally:
        for w in watches.values():
            if w.poll() is None:
                w.kill()
                w.wait()
    for name, (out, err) in results.items():
        data = json.loads(out)
        assert data["state"] == "stopped" and "time limit" in data["error"]
        stalls = [s for s in data["stacks"] if s["reason"] == "stall"]
        assert len(stalls) == 1, (name, err)
        assert any(e["kind"] == "stall" and e["detail"].startswith("no progress for 3.")
                   for e in data["events"]), data["events"]
        assert "where each process is waiting" in err, err
        pids = [p["pid"] for p in stalls[0]["processes"]]
        for pid in pids:
            assert f"Process {pid}: " in err
        assert f"{name}:" in err   # the program's own frame, as file:line in function
        if name == "join_before_drain.py":
            assert " in _send" in err and " in join" in err
        else:
            assert " in take_lock" in err


def test_every_viewer_gets_the_snapshot_as_a_stacks_message(live_server, dashboard):
    import requests
    import socketio
    client = socketio.Client(reconnection=False)
    got = []
    client.on("stacks", got.append)
    client.connect(live_server, transports=["websocket"], wait_timeout=10)
    try:
        run = dashboard.engine.start_command(program("sleep_child.py", "30"), timeout=30)
        wait_for(lambda: len(run.live_pids()) == 2, what="both processes")
        answer = requests.post(f"{live_server}/api/runs/{run.id}/stacks", timeout=10)
        assert answer.status_code == 200
        wait_for(lambda: got, what="the stacks message")
        assert got[0] == answer.json()
        dashboard.engine.stop(run.id)
        ended = requests.post(f"{live_server}/api/runs/{run.id}/stacks", timeout=10)
        assert ended.status_code == 409 and "ended" in ended.json()["error"]
    finally:
        client.disconnect()


def test_watch_stall_0_turns_detection_off_and_a_bad_value_is_refused(tmp_path):
    off = subprocess.run(
        [sys.executable, "-m", "mpdash", "watch", "--exit", "--json", "--timeout", "5",
         "--stall", "0", "--port", "0", "--data", str(tmp_path), "--",
         *program("join_before_drain.py")],
        cwd=ROOT, capture_output=True, text=True, timeout=60)
    data = json.loads(off.stdout)
    assert data["stacks"] == [] and not [e for e in data["events"] if e["kind"] == "stall"]
    assert "where each process is waiting" not in off.stderr
    bad = subprocess.run([sys.executable, "-m", "mpdash", "watch", "--stall", "-1", "--",
                          "true"], cwd=ROOT, capture_output=True, text=True, timeout=30)
    assert bad.returncode == 2 and "--stall" in bad.stderr


def test_a_stopped_process_is_not_waited_for(quiet_dash):
    dash = quiet_dash
    run = dash.engine.start_command(program("sleep_child.py", "30"), timeout=30)
    wait_for(lambda: len(run.live_pids()) == 2, what="both processes")
    settle(dash, run, 2, until=lambda s: proc_of(s, run.main_pid)["threads"])
    os.kill(run.main_pid, signal.SIGSTOP)
    try:
        wait_for(lambda: stacks_mod.kernel_view(run.main_pid)["state"] == "T", what="stopped")
        started = time.monotonic()
        snap = dash.stacks.take(run.id)
        assert time.monotonic() - started < stacks_mod.ANSWER_TIMEOUT
        main = proc_of(snap, run.main_pid)
        assert main["state"] == "T" and main["python"] is True and main["threads"] == []
    finally:
        os.kill(run.main_pid, signal.SIGCONT)
    dash.engine.stop(run.id)


def test_library_frames_are_the_stdlib_packages_mpdash_and_multiprocessing_bootstraps():
    import multiprocessing
    assert stacks_mod.is_library(multiprocessing.__file__)
    assert stacks_mod.is_library("<string>") and stacks_mod.is_library("<frozen runpy>")
    assert stacks_mod.is_library(stacks_mod.__file__.replace("stacks.py", "inrun/lifecycle.py"))
    assert not stacks_mod.is_library(stacks_mod.__file__.replace("stacks.py", "lessons/queue.py"))
    assert not stacks_mod.is_library(os.path.join(PROGRAMS, "join_before_drain.py"))


def test_the_stall_watch_never_reads_the_hub_while_holding_its_wake_lock():
    """Lock order (mpdash/stall.py): its listener takes ``_wake`` under the hub's lock, so the
    loop must never take the hub's lock under ``_wake``. It once did (``hub.live_runs()`` inside
    ``with self._wake``): a run starting at that moment froze the engine, every viewer and the
    server's shutdown for good (a browser test hung make test past pytest-timeout)."""
    from mpdash.stall import StallWatch
    from mpdash.state import Hub

    hub = Hub()
    inside = []
    watch = None

    original = hub.live_runs

    def live_runs():
        if watch is not None and threading.current_thread().name == "mpdash-stall":
            inside.append(watch._wake._is_owned())
        return original()

    hub.live_runs = live_runs
    watch = StallWatch(hub, stacks=None, stall=1.0)
    try:
        run = Run(id="rlock", lesson="x", title="x", params={})
        hub.add_run(run)
        for _ in range(3):   # a run "starting": the listener notifies under the hub's lock
            hub.set_state(run, "running")
            assert wait_until(lambda n=len(inside): len(inside) > n, timeout=10)
    finally:
        watch.close()
    assert inside and not any(inside), inside
