"""`python -m mpdash list|run` as a user types it: output and exit status."""
import json
import os
import subprocess
import sys

import pytest

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
    proc.communicate(timeout=60)
    assert run_processes(proc.pid) == []
