"""A watched program has a program's limits (issue 12): no time or memory limit unless asked,
a process limit of max(256, 8 x cores) unless ``--max-procs``; lessons keep theirs. And it is
shown as a program: its folder, its script's source, findings that describe what it did.

Each program is a real script under tests/scripts/, run by a real ``mpdash watch --exit --json``.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from mpdash.dashboard import Dashboard
from mpdash.engine import limits, program
from mpdash.runs import PROJECT_ROOT
from mpdash.state import Limits
from tests.conftest import finish
from tests.leaks import assert_none_left

SCRIPTS = os.path.join(PROJECT_ROOT, "tests", "scripts")


def _watch(tmp_path, *command, options=(), timeout=90, cwd=PROJECT_ROOT):
    argv = [sys.executable, "-m", "mpdash", "watch", "--port", "0", "--exit", "--json",
            "--data", str(tmp_path / "data"), *options, "--", *command]
    env = {**os.environ, "PYTHONPATH": PROJECT_ROOT}
    proc = subprocess.Popen(argv, cwd=cwd, env=env, stdin=subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    out, err = finish(proc, timeout)
    assert_none_left(proc.pid)
    return proc.returncode, (json.loads(out) if out.strip() else None), err.decode()


def _finding(run, key):
    return next((f for f in run["findings"] if f["key"] == key), None)


def test_default_process_limit_fits_a_big_machine():
    assert limits.watch_process_limit(2) == 256
    assert limits.watch_process_limit(70) == 560
    assert limits.watch_process_limit() == max(256, 8 * os.cpu_count())


def test_a_pool_of_70_is_watched_to_its_end_not_killed(tmp_path):
    """Pool(70): more than the lessons' 64 processes; a program's default limit lets it be."""
    script = os.path.join(SCRIPTS, "pool70.py")
    code, run, err = _watch(tmp_path, sys.executable, script, cwd=str(tmp_path))
    assert code == 0, err
    assert run["state"] == "finished" and run["error"] is None, run["error"]
    assert run["process_limit"] == limits.watch_process_limit()
    assert run["time_limit"] is None and run["rss_limit"] is None
    workers = [p for p in run["processes"] if p["role"] == "worker"]
    assert len(workers) == 70 and all(p["exitcode"] is not None for p in run["processes"])
    assert "70 tasks done by 70 workers" in [l["text"] for l in run["output"]]
    # Shown as a program: where it ran, what it ran.
    assert run["cwd"] == str(tmp_path)
    with open(script) as f:
        assert run["source"] == {"path": script, "text": f.read(), "truncated": False}
    # Findings from the run's own records, consistent with its processes and events.
    procs = _finding(run, "processes")
    assert procs["value"] == len(run["processes"]) >= 71
    assert "70 workers" in procs["text"] and "1 main" in procs["text"]
    ends = _finding(run, "ends")
    assert sum(ends["value"].values()) == len(run["processes"])
    # `with Pool()` ends with terminate(): a worker not gone by then gets SIGTERM (a few do).
    exited_0 = sum(1 for p in run["processes"] if p["end"] == "exit" and p["exitcode"] == 0)
    sigterm = sum(1 for p in run["processes"] if p["end"] == "terminated" and p["exitcode"] == -15)
    assert exited_0 + sigterm == len(run["processes"])
    assert ends["value"] == {k: v for k, v in (("exited with code 0", exited_0),
                                               ("terminated by SIGTERM", sigterm)) if v}
    tasks = _finding(run, "tasks_per_worker")
    ended = {}
    for e in run["events"]:
        if e["kind"] == "task_end":
            ended[str(e["pid"])] = ended.get(str(e["pid"]), 0) + 1
        elif e["kind"] == "traffic" and e.get("tasks_ended"):
            ended[str(e["pid"])] = ended.get(str(e["pid"]), 0) + e["tasks_ended"]
    assert tasks["value"] == ended and sum(ended.values()) == 70
    assert tasks["text"].startswith("70 tasks ran on ")
    print(f"Pool(70) watched: {len(run['processes'])} processes, {run['duration']:.2f} s, "
          f"tasks per worker {sorted(ended.values())[0]}..{sorted(ended.values())[-1]}")


def test_max_procs_8_stops_the_program_and_says_so(tmp_path):
    code, run, err = _watch(tmp_path, sys.executable, os.path.join(SCRIPTS, "many_sleepers.py"),
                            "20", options=("--max-procs", "8"))
    assert run["state"] == "stopped" and run["process_limit"] == 8
    assert run["error"] == "process limit: more than 8 live processes (watch --max-procs)"
    assert code in (128 + signal.SIGTERM, 128 + signal.SIGKILL)
    assert "the run was stopped: process limit: more than 8" in err
    assert all(p["ended_at"] is not None for p in run["processes"])
    # A stopped program is still described: how its processes ended.
    ends = _finding(run, "ends")
    assert ends is not None and sum(ends["value"].values()) == len(run["processes"]) > 8


def test_max_rss_stops_the_program(tmp_path):
    code, run, err = _watch(tmp_path, sys.executable, os.path.join(PROJECT_ROOT, "tests", "programs", "hog.py"), "80", "3",
                            options=("--max-rss", "150M"))
    assert run["state"] == "stopped" and run["rss_limit"] == 150 * 2**20
    assert run["error"].startswith("memory limit: ") and "(limit 150 MiB)" in run["error"]
    assert "--max-rss" in run["error"] and code != 0


@pytest.mark.parametrize("option", [("--max-procs", "0"), ("--max-procs", "many"),
                                    ("--max-rss", "12X"), ("--max-rss", "100K")])
def test_bad_limit_values_exit_2(tmp_path, option):
    code, run, err = _watch(tmp_path, sys.executable, "-c", "pass", options=option, timeout=30)
    assert code == 2 and run is None and option[0] in err


def test_lessons_keep_their_limits_beside_a_big_program():
    """A lesson's run still has 120 s / 64 processes / 2 GiB, and a watched program's
    processes do not count against the lessons' 64."""
    with Dashboard(Limits(max_processes=6)) as dash:
        big = dash.engine.start_command([sys.executable, os.path.join(SCRIPTS, "many_sleepers.py"), "8"])
        deadline = time.monotonic() + 20
        while len(big.live_pids()) < 9 and time.monotonic() < deadline:
            time.sleep(0.02)
        assert len(big.live_pids()) == 9 and big.stop_reason is None
        lesson = dash.engine.start_lesson("process-target", {})
        dash.engine.wait(lesson.id, timeout=30)
        data = dash.hub.snapshot(lesson)
        assert data["state"] == "finished", data["error"]
        assert (data["time_limit"], data["process_limit"], data["rss_limit"]) == (120.0, 6, 2 << 30)
        assert data["cwd"] is None and data["source"] is None
        dash.engine.stop(big.id)
    assert_none_left(os.getpid())


@pytest.mark.parametrize("argv, expected", [
    (["python3", "prog.py", "--flag"], "prog.py"),
    (["/usr/bin/python3.12", "-u", "-X", "dev", "prog.py"], "prog.py"),
    (["python", "-m", "pkg.tool", "x"], "pkg/tool.py"),
    (["python", "-mpkg"], "pkg/__main__.py"),
    (["./prog.py"], "prog.py"),
    (["python", "-c", "print(1)"], None),
    (["sh", "-c", "python prog.py"], None),
    (["python", "missing.py"], None),
])
def test_the_script_a_command_runs(tmp_path, argv, expected):
    (tmp_path / "prog.py").write_text("print('hi')\n")
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "__main__.py").write_text("")
    (tmp_path / "pkg" / "tool.py").write_text("")
    found = program.script_of(argv, str(tmp_path), {})
    assert found == (str(tmp_path / expected) if expected else None)


@pytest.mark.parametrize("argv", [["python3", "-c", "import os\nprint(os.getpid())"],
                                  ["python3", "-u", "-cimport os\nprint(os.getpid())", "x"]])
def test_a_dash_c_program_is_its_own_source(tmp_path, argv):
    assert program.read_source(argv, str(tmp_path)) == {
        "path": "-c", "text": "import os\nprint(os.getpid())", "truncated": False}


def test_a_big_source_is_cut_at_a_line_and_says_so(tmp_path):
    line = "x = 1  # " + "-" * 70 + "\n"
    (tmp_path / "big.py").write_text(line * 2000)     # 160 kB
    source = program.read_source(["python", "big.py"], str(tmp_path))
    assert source["truncated"] and source["path"] == str(tmp_path / "big.py")
    assert len(source["text"].encode()) <= program.MAX_SOURCE_BYTES
    assert source["text"].endswith("\n") and set(source["text"].splitlines()) == {line[:-1]}


def test_the_program_as_shown_is_kept_in_the_history(tmp_path):
    """cwd, source and limits survive a restart; summaries (lists, run messages) stay small."""
    data = str(tmp_path / "data")
    script = os.path.join(SCRIPTS, "pool_map.py")
    with Dashboard(data_dir=data) as dash:
        run = dash.engine.start_command([sys.executable, script], cwd=str(tmp_path),
                                        max_procs=40, max_rss=3 << 30)
        dash.engine.wait(run.id, timeout=30)
        before = dash.hub.snapshot(run)
        assert "source" not in run.summary() and "source" not in dash.hub.summaries()[0]
    with Dashboard(data_dir=data) as dash:
        after = dash.hub.snapshot(dash.hub.get(run.id))
    for key in ("cwd", "source", "process_limit", "rss_limit", "time_limit", "findings"):
        assert after[key] == before[key], key
    assert after["source"]["path"] == script and after["process_limit"] == 40
    assert_none_left(os.getpid())


def test_every_end_is_said_in_words_from_the_run(tmp_path):
    """The ends finding from a real program whose processes end each way it can: exit 0,
    exit 3, terminate() (SIGTERM), a SIGKILL from within, and a stopped-by-limit kill."""
    script = tmp_path / "ends.py"
    script.write_text(
        "import os, signal, sys, time\n"
        "from multiprocessing import Process\n"
        "def kill_self(): os.kill(os.getpid(), signal.SIGKILL)\n"
        "if __name__ == '__main__':\n"
        "    ps = [Process(target=sys.exit, args=(0,)), Process(target=sys.exit, args=(3,)),\n"
        "          Process(target=time.sleep, args=(30,)), Process(target=kill_self)]\n"
        "    for p in ps: p.start()\n"
        "    ps[2].terminate()\n"
        "    for p in ps: p.join()\n")
    with Dashboard() as dash:
        run = dash.engine.start_command([sys.executable, str(script)])
        dash.engine.wait(run.id, timeout=30)
        data = dash.hub.snapshot(run)
    ends = _finding(data, "ends")["value"]
    assert ends == {"exited with code 0": 2, "exited with code 3": 1,
                    "terminated by SIGTERM": 1, "died of SIGKILL": 1}, ends
    assert _finding(data, "processes")["text"].startswith("The program ran 5 processes: 1 main, 4 workers;")
    assert_none_left(os.getpid())


def test_a_module_run_with_dash_m_shows_its_own_source():
    """``python -m tutorial_pkg`` from its folder: the source is the package's __main__.py."""
    with Dashboard() as dash:
        run = dash.engine.start_command([sys.executable, "-m", "tutorial_pkg"], cwd=SCRIPTS)
        dash.engine.wait(run.id, timeout=30)
        data = dash.hub.snapshot(run)
    main = os.path.join(SCRIPTS, "tutorial_pkg", "__main__.py")
    assert data["state"] == "finished" and data["cwd"] == SCRIPTS
    with open(main) as f:
        assert data["source"] == {"path": main, "text": f.read(), "truncated": False}
    assert_none_left(os.getpid())
