"""`python -m mpdash list|run` as a user types it: output and exit status."""
import json
import os
import signal
import subprocess
import sys
import time

import pytest

from mpdash.paths import default_data_dir
from mpdash.store import DB_NAME, Store
from tests.leaks import run_processes

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def mpdash(*args, timeout=60):
    return subprocess.run([sys.executable, "-m", "mpdash", *args], cwd=ROOT, capture_output=True,
                          text=True, timeout=timeout)


def test_list_names_every_lesson_and_param():
    out = mpdash("list")
    assert out.returncode == 0
    assert "pool-map" in out.stdout and "workers=3" in out.stdout


def test_run_json_is_the_run_object():
    out = mpdash("run", "pool-map", "--json")
    assert out.returncode == 0, out.stderr
    run = json.loads(out.stdout)
    assert run["state"] == "finished" and run["result"] == [1, 4, 9, 16, 25]
    assert len(run["processes"]) == 4


def test_run_prints_a_readable_story():
    out = mpdash("run", "process-target", "--param", "processes=3")
    assert out.returncode == 0, out.stderr
    assert out.stdout.count("Number: 5") == 3 and "finished" in out.stdout


@pytest.mark.parametrize("args", [["run", "nope"], ["run", "pool-map", "--param", "workers=99"],
                                  ["run", "pool-map", "--param", "workers"],
                                  ["run", "pool-map", "--param", "bogus=1"]])
def test_bad_arguments_exit_2(args):
    out = mpdash(*args)
    assert out.returncode == 2 and "error" in out.stderr


def test_run_leaves_nothing_behind():
    proc = subprocess.Popen([sys.executable, "-m", "mpdash", "run", "pool-map", "--json"], cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err.decode()[-2000:]
    assert json.loads(out)["state"] == "finished"
    assert run_processes(proc.pid) == []


@pytest.mark.parametrize("crash", ["exception", "segfault"])
def test_a_worker_crashing_on_purpose_is_a_finished_run_exit_0(crash):
    out = mpdash("run", "crash-isolation", "--param", f"crash={crash}", "--json")
    run = json.loads(out.stdout)
    assert run["state"] == "finished" and out.returncode == 0, (out.returncode, out.stderr[-2000:])
    assert any(p["end"] == "crash" for p in run["processes"])


@pytest.mark.parametrize("inherited", ["default", "ignored"])
def test_a_stopped_run_exits_1(inherited):
    """Ctrl-C stops the run (state stopped): exit status 1, and nothing is left. Also when
    started with SIGINT ignored, as a script's background job is (make test from one)."""
    # The disposition is set, then kept across exec (an ignored signal stays ignored).
    how = "SIG_IGN" if inherited == "ignored" else "SIG_DFL"
    command = [sys.executable, "-m", "mpdash", "run", "process-target",
               "--param", "delay=1.0", "--param", "count=30"]
    proc = subprocess.Popen([sys.executable, "-c", f"import os, signal, sys; "
                             f"signal.signal(signal.SIGINT, signal.{how}); "
                             f"os.execv(sys.executable, {command!r})"], cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 30
        while "Number: 1" not in proc.stdout.readline():   # the run is under way
            assert time.monotonic() < deadline and proc.poll() is None, "the run never printed"
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 1, (proc.returncode, err[-2000:])
    assert ": stopped in " in out and "interrupted (Ctrl-C)" in err, (out[-500:], err[-500:])
    assert run_processes(proc.pid) == []


def test_headless_runs_are_not_stored():
    data_dir = default_data_dir()
    db = os.path.join(data_dir, DB_NAME)
    existed = os.path.exists(db)
    out = mpdash("run", "process-target", "--json")
    assert out.returncode == 0, out.stderr
    run_id = json.loads(out.stdout)["id"]
    if not existed:
        assert not os.path.exists(db), "mpdash run created a history"
        return
    runs, _ = Store(data_dir).load()
    assert run_id not in {r.id for r in runs}


def test_a_terminal_that_does_not_read_never_stalls_the_engine(monkeypatch):
    """``mpdash run | less``, stopped: the live lines wait in the echo's queue, and the run goes
    on (they were printed under the hub's lock, which froze the engine with the terminal)."""
    import threading
    from mpdash import cli
    from mpdash.dashboard import Dashboard
    from mpdash.echo import Echo
    gate = threading.Event()

    class Stuck:
        def write(self, text):
            gate.wait(30)

        def flush(self):
            pass

    monkeypatch.setattr(sys, "stdout", Stuck())
    echo = Echo(all_to_stderr=False)
    try:
        with Dashboard() as dash:
            dash.hub.subscribe(cli._printer(echo))
            run = dash.engine.start_lesson("process-target", {})
            dash.engine.wait(run.id, timeout=20)
            assert run.state == "finished", run.error
    finally:
        gate.set()
        echo.close()
