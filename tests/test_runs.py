"""The run lifecycle through the engine alone (no web): start, watch, end, stop, limits."""
import os
import time

import pytest

from mpdash.dashboard import Dashboard
from mpdash.runs import LimitError
from mpdash.state import Limits
from tests.conftest import wait_until
from tests.leaks import alive, assert_none_left, run_processes


def run_to_end(dashboard, lesson, params=None, timeout=60):
    run = dashboard.engine.start_lesson(lesson, params or {})
    dashboard.engine.wait(run.id, timeout=timeout)
    return run


def wait_live(run, count, timeout=10):
    """The run's live pids once ``count`` of them are up (asserts they came in time)."""
    pids = wait_until(lambda: len(run.live_pids()) == count and run.live_pids(), timeout=timeout)
    assert pids and len(pids) == count, run.live_pids()
    return pids


def procs_by_role(run):
    roles = {}
    for p in run.processes.values():
        roles.setdefault(p["role"], []).append(p)
    return roles


def test_pool_map_reproduces_the_tutorial(dashboard):
    run = run_to_end(dashboard, "pool-map")
    assert run.state == "finished", run.error
    assert run.result == [1, 4, 9, 16, 25]
    roles = procs_by_role(run)
    assert len(roles["main"]) == 1 and roles["main"][0]["exitcode"] == 0
    workers = roles["worker"]
    assert len(workers) == 3
    main_pid = roles["main"][0]["pid"]
    for w in workers:
        assert w["ppid"] == main_pid and w["daemon"] is True and w["start_method"] == "fork"
        assert w["ended_at"] is not None
        # `with Pool()` ends idle workers with SIGTERM: terminated, not crashed.
        assert (w["exitcode"], w["end"]) in ((0, "exit"), (-15, "terminated")), w
    assert any(l["text"] == "[1, 4, 9, 16, 25]" and l["pid"] == main_pid for l in run.output)


@pytest.mark.parametrize("lesson, prefix", [("process-target", "Number: "),
                                            ("process-subclass", "Process ")])
@pytest.mark.parametrize("method", ["fork", "spawn", "forkserver"])
def test_each_line_is_labelled_with_the_process_that_printed_it(dashboard, lesson, prefix, method):
    run = run_to_end(dashboard, lesson, {"start_method": method})
    assert run.state == "finished", run.error
    workers = [p for p in run.processes.values() if p["role"] == "worker"]
    assert len(workers) == 2 and all(w["start_method"] == method for w in workers)
    assert all((w["exitcode"], w["end"]) == (0, "exit") for w in workers)
    for w in workers:
        lines = [l["text"] for l in run.output if l["pid"] == w["pid"]]
        assert len(lines) == 5 and all(line.startswith(prefix) for line in lines)
        assert [line.rsplit(" ", 1)[-1] for line in lines] == ["1", "2", "3", "4", "5"]
    if method != "fork":  # spawn and forkserver need the resource tracker (and the forkserver)
        helpers = [p for p in run.processes.values() if p["role"] == "helper"]
        assert helpers and all(h["end"] == "exit" for h in helpers), helpers


def test_subclass_names_its_processes(dashboard):
    run = run_to_end(dashboard, "process-subclass")
    names = sorted(p["name"] for p in run.processes.values() if p["role"] == "worker")
    assert names == ["MyProcess-1", "MyProcess-2"]


def test_stop_ends_every_process_within_two_seconds(dashboard):
    run = dashboard.engine.start_lesson("pool-map", {"spin": 5.0, "items": 20})
    pids = wait_live(run, 4)
    t0 = time.monotonic()
    dashboard.engine.stop(run.id)
    took = time.monotonic() - t0
    assert run.state == "stopped" and "stopped" in run.error
    assert took < 2.0
    assert [pid for pid in pids if alive(pid)] == []   # gone or a zombie, read race-free
    assert all(p["end"] == "killed" for p in run.processes.values())
    assert run_processes(dashboard) == []


def test_a_lessons_temporary_files_go_with_its_run_however_it_ends(dashboard):
    """A lesson's TMPDIR is a folder of its run (main-guard writes its program.py there, and
    multiprocessing its pymp-* folders): a Stop skips the lesson's own cleanup, not that."""
    run = dashboard.engine.start_lesson("pool-map", {"spin": 5.0, "items": 20})
    wait_live(run, 4)
    main = run.main_pid
    with open(f"/proc/{main}/environ", "rb") as f:
        env = dict(v.split(b"=", 1) for v in f.read().split(b"\0") if b"=" in v)
    scratch = env[b"TMPDIR"].decode()
    assert os.path.isdir(scratch) and scratch.startswith(dashboard.engine._core.tmp), scratch
    with open(os.path.join(scratch, "left.txt"), "w") as f:   # as a killed lesson leaves it
        f.write("x")
    dashboard.engine.stop(run.id)
    assert run.state == "stopped" and not os.path.exists(scratch)
    finished = run_to_end(dashboard, "process-target")
    assert finished.state == "finished"
    assert [n for n in os.listdir(dashboard.engine._core.tmp) if n.startswith(finished.id)] == []


def test_no_scratch_folder_where_multiprocessings_sockets_would_not_fit():
    """Under a server whose TMPDIR is long, forkserver's TMPDIR/pymp-*/listener-* socket would
    pass the 107-byte limit of a socket path: the lesson keeps the server's TMPDIR then."""
    from types import SimpleNamespace
    from mpdash.engine.context import MAX_SCRATCH, has_scratch, scratch_folder
    lesson = SimpleNamespace(kind="lesson", id="r1a231677827001d78")
    for length, fits in ((20, True), (80, False)):
        core = SimpleNamespace(tmp="/" + "x" * (length - 1))
        assert has_scratch(core, lesson) is fits
        assert (len(scratch_folder(core, lesson.id)) + 32 <= 107) is fits and MAX_SCRATCH == 75
    assert not has_scratch(SimpleNamespace(tmp="/tmp/m"), SimpleNamespace(kind="watch", id="r"))


def test_stop_of_an_ended_run_returns_it(dashboard):
    run = run_to_end(dashboard, "process-target")
    assert dashboard.engine.stop(run.id).state == "finished"


def test_time_limit_stops_the_run():
    with Dashboard(Limits(run_seconds=0.5)) as dash:
        run = dash.engine.start_lesson("process-target", {"delay": 1.0, "count": 10})
        dash.engine.wait(run.id, timeout=10)
        assert run.state == "stopped" and run.error.startswith("time limit")
        # A limit stop is a kill like Stop (docs/API.md `end`), never a crash.
        assert all(p["end"] == "killed" for p in run.processes.values()), run.processes
    assert_none_left(dash)


_STUBBORN = """
import os, signal, sys, time
signal.signal(signal.SIGTERM, signal.SIG_IGN)      # only SIGKILL ends these
for _ in range(int(sys.argv[1])):
    if os.fork() == 0:
        time.sleep(60)
        os._exit(0)
    time.sleep(0.05)
time.sleep(60)
"""


def test_the_process_limit_kills_at_once_without_the_grace():
    """A run past the process limit may be a fork bomb: SIGKILL at once, not SIGTERM and a
    grace (here 20 s, and every process ignores SIGTERM: only the kill can end them)."""
    import sys
    with Dashboard(Limits(stop_grace=20.0)) as dash:
        # A watched program's own limit (issue 12), as `watch --max-procs 4` sets it.
        run = dash.engine.start_command([sys.executable, "-c", _STUBBORN, "10"], max_procs=4)
        dash.engine.wait(run.id, timeout=15)
        assert run.state == "stopped" and run.error.startswith("process limit"), run.error
        assert run.ended_at - run.started_at < 10, run.ended_at - run.started_at
        assert all((p["end"], p["exitcode"]) in (("killed", -9), ("killed", None))
                   for p in run.processes.values()), run.processes
        assert run.processes[run.main_pid]["exitcode"] == -9
    assert_none_left(dash)


def test_concurrent_run_limit_refuses_and_starts_nothing():
    with Dashboard(Limits(max_runs=1)) as dash:
        first = dash.engine.start_lesson("process-target", {"delay": 0.5, "count": 10})
        with pytest.raises(LimitError, match="at most 1 run"):
            dash.engine.start_lesson("process-target", {})
        assert len(dash.hub.runs) == 1
        dash.engine.stop(first.id)
    assert_none_left(dash)


def test_process_limit_stops_a_run_that_grows_past_it():
    with Dashboard(Limits(max_processes=3)) as dash:
        run = dash.engine.start_lesson("pool-map", {"workers": 6, "spin": 1.0, "items": 12})
        dash.engine.wait(run.id, timeout=10)
        assert run.state == "stopped" and run.error.startswith("process limit")
        assert all(p["end"] == "killed" for p in run.processes.values()), run.processes
    assert_none_left(dash)


def test_failing_main_is_failed_with_its_traceback(dashboard, tmp_path):
    script = tmp_path / "boom.py"
    script.write_text("print('before')\nraise SystemExit(3)\n")
    import sys
    run = dashboard.engine.start_command([sys.executable, str(script)])
    dashboard.engine.wait(run.id, timeout=10)
    assert run.state == "failed" and "code 3" in run.error
    assert [l["text"] for l in run.output] == ["before"]


def test_every_message_has_a_strictly_increasing_seq(dashboard):
    seen = []
    dashboard.hub.subscribe(lambda name, msg: seen.append(msg["seq"]))
    run_to_end(dashboard, "pool-map")
    assert seen == sorted(seen) and len(seen) == len(set(seen)) and len(seen) > 10


def test_since_returns_only_what_changed(dashboard):
    run = run_to_end(dashboard, "process-target")
    full = run.to_json()
    middle = full["output"][4]["seq"]
    later = run.to_json(since=middle)
    assert [l["seq"] for l in later["output"]] == [l["seq"] for l in full["output"] if l["seq"] > middle]
    assert run.to_json(since=run.seq)["output"] == []


def test_short_lived_workers_appear_in_a_metrics_frame(dashboard):
    run = run_to_end(dashboard, "pool-map")
    sampled = {pid for frame in run.frames for pid in frame["pid"]}
    workers = {p["pid"] for p in run.processes.values() if p["role"] == "worker"}
    assert workers & sampled, (workers, sampled)


def test_daemon_ended_by_its_mains_exit_is_terminated_not_crashed(dashboard, tmp_path):
    # multiprocessing's exit hook ends daemonic children with p._popen.terminate(), not
    # p.terminate(): the probe must see that path too.
    import sys
    script = tmp_path / "daemon.py"
    script.write_text(
        "import time\nfrom multiprocessing import Process\n"
        "def count():\n    for i in range(50):\n        time.sleep(0.1)\n"
        "if __name__ == '__main__':\n"
        "    Process(target=count, daemon=True).start()\n    time.sleep(0.3)\n")
    run = dashboard.engine.start_command([sys.executable, str(script)])
    dashboard.engine.wait(run.id, timeout=20)
    daemon = next(p for p in run.processes.values() if p["role"] == "worker")
    assert (daemon["exitcode"], daemon["end"]) == (-15, "terminated")
    assert any(e["kind"] == "terminate" and e["channel"] == str(daemon["pid"]) for e in run.events)


def _catches_sigterm(pid):
    # Read, never check-then-open: a pid of the list may end in between (then it catches nothing).
    try:
        with open(f"/proc/{pid}/status") as f:
            caught = next(int(l.split()[1], 16) for l in f if l.startswith("SigCgt"))
    except (FileNotFoundError, ProcessLookupError):
        return False
    return bool(caught & (1 << (15 - 1)))


def test_no_process_of_a_run_catches_sigterm(dashboard):
    # A Python-level SIGTERM handler in a process that forks loses signals that land between
    # fork() and the child's after-fork reset: Pool.terminate() then left a worker alive and
    # the run hung. Every process of a lesson run must keep SIGTERM's default action.
    run = dashboard.engine.start_lesson("pool-map", {"spin": 2.0, "items": 6})
    pids = wait_live(run, 4)
    assert [pid for pid in pids if _catches_sigterm(pid)] == []
    dashboard.engine.stop(run.id)


def test_pool_runs_back_to_back_all_finish(dashboard):
    for _ in range(6):
        runs = [dashboard.engine.start_lesson("pool-map", {"items": 20}) for _ in range(4)]
        for run in runs:
            dashboard.engine.wait(run.id, timeout=20)
            assert run.state == "finished", (run.state, run.error)


def test_a_runs_own_event_fields_cannot_override_seq_or_run(dashboard, tmp_path):
    # ctx.event(kind, **fields) passes extra fields through; "seq" and "run" are the server's.
    import sys
    script = tmp_path / "event.py"
    script.write_text("from mpdash import protocol\nfrom mpdash.inrun import channel\n"
                      "channel.send(protocol.EVENT, kind='custom', seq=1, run='other')\n")
    run = dashboard.engine.start_command([sys.executable, str(script)])
    dashboard.engine.wait(run.id, timeout=10)
    event = next(e for e in run.events if e["kind"] == "custom")
    assert event["run"] == run.id and event["seq"] > 1
    seqs = [e["seq"] for e in run.events]
    assert seqs == sorted(set(seqs))


def test_an_analysis_that_raises_is_the_runs_error_not_silence(dashboard, monkeypatch):
    """Findings computed after the run must never vanish silently: a lesson's analyze() that
    raises is named in the run's error (and the contract test of every lesson fails on it)."""
    import dataclasses
    from mpdash import lessons

    def broken(run):
        raise ZeroDivisionError("no samples")

    lesson = lessons.get("daemon")
    monkeypatch.setitem(lessons.catalog(), "daemon", dataclasses.replace(lesson, analyze=broken))
    run = run_to_end(dashboard, "daemon", {"main_seconds": 0.1, "step_seconds": 0.05, "steps": 2})
    assert run.state == "finished"
    assert run.error == "the analysis of this run failed: ZeroDivisionError: no samples"
