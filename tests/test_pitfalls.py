"""§12 "When it goes wrong" (issue 13): every pitfall lesson in both modes, and its claims.

Each lesson runs for real: fixed=false must show the pitfall happening (and still end
``finished``: the lesson working is not the run failing), fixed=true the documented fix.
Timing claims retry a few runs and then fail; they never skip.
"""
from __future__ import annotations

import importlib.util
import os
import sys
import time

import pytest

from tests.conftest import run_lesson

# lesson id -> (params that keep the run short, {finding key: allowed types})
CONTRACT = {
    "queue-deadlock": ({}, {"deadlocked": bool, "item_bytes": int, "pipe_buffer_bytes": int,
                            "waited_s": (int, float)}),
    "main-guard": ({}, {"children_failed": int, "child_error": (str, type(None))}),
    "pickling": ({}, {"error": (str, type(None))}),
    "globals-not-shared": ({}, {"parent_value": int, "child_values": list,
                                "start_method": str}),
    "fork-with-threads": ({}, {"child_hung": bool, "warning": (str, type(None))}),
    "pool-overhead": ({"tasks": 2000, "repeats": 1},
                      {"serial_s": (int, float), "pool_s": (int, float),
                       "speedup": (int, float), "tasks": int, "chunksize": int,
                       "pool_cores": (int, float)}),
}
POOL_RESULT = {"serial_s", "pool_s", "loop_cores", "pool_cores"}
# What the pitfall looks like (fixed=false) and what the fix gives (fixed=true), at the
# parameters above: (check of the findings, check of the result).
OUTCOME = {
    ("queue-deadlock", False): (lambda f: f["deadlocked"] is True and f["waited_s"] >= 5,
                                lambda r: r is None),
    ("queue-deadlock", True): (lambda f: f["deadlocked"] is False, lambda r: r == 1024 * 1024),
    ("main-guard", False): (lambda f: f["children_failed"] == 2
                            and f["child_error"].startswith("RuntimeError: An attempt has "
                                                            "been made to start a new process"),
                            lambda r: r == 0),
    ("main-guard", True): (lambda f: f["children_failed"] == 0 and f["child_error"] is None,
                           lambda r: r == 0),
    ("pickling", False): (lambda f: f["error"].startswith("PicklingError: Can't pickle"),
                          lambda r: r is None),
    ("pickling", True): (lambda f: f["error"] is None, lambda r: r == [1, 4, 9, 16, 25]),
    ("globals-not-shared", False): (lambda f: f["parent_value"] == 0
                                    and f["child_values"] == [1000] * 3
                                    and f["start_method"] == "fork", lambda r: True),
    ("globals-not-shared", True): (lambda f: f["parent_value"] == 3000
                                   and max(f["child_values"]) == 3000, lambda r: True),
    ("fork-with-threads", False): (lambda f: f["child_hung"] is True,
                                   lambda r: r["start_method"] == "fork" and r["exitcode"] == -15),
    ("fork-with-threads", True): (lambda f: f["child_hung"] is False and f["warning"] is None,
                                  lambda r: r["start_method"] == "forkserver"
                                  and r["exitcode"] == 0),
    ("pool-overhead", False): (lambda f: f["chunksize"] == 1 and f["tasks"] == 2000,
                               lambda r: set(r) == POOL_RESULT),
    ("pool-overhead", True): (lambda f: f["chunksize"] == 250, lambda r: set(r) == POOL_RESULT),
}


HAS_STACKS = importlib.util.find_spec("mpdash.stall") is not None   # issue 11


def findings(data) -> dict:
    assert data["state"] == "finished", data["error"]
    return {f["key"]: f["value"] for f in data["findings"]}


@pytest.mark.parametrize("fixed", [False, True], ids=["pitfall", "fixed"])
@pytest.mark.parametrize("lesson_id", sorted(CONTRACT))
def test_pitfall_contract_in_both_modes(dashboard, lesson_id, fixed):
    params, keys = CONTRACT[lesson_id]
    data = run_lesson(dashboard, lesson_id, {**params, "fixed": fixed})
    found = {f["key"]: f for f in data["findings"]}
    values = findings(data)
    assert set(keys) <= set(found), sorted(found)
    for key, kind in keys.items():
        value = found[key]["value"]
        assert isinstance(value, kind) and (kind is not int or not isinstance(value, bool)), \
            (key, value)
        assert found[key]["text"]
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            shown = {f"{value}", f"{value:,}", f"{value:.1f}", f"{value:.2f}", f"{value:.3f}"}
            assert any(s in found[key]["text"] for s in shown), found[key]
        if isinstance(value, str):   # a measured string is quoted in its sentence
            assert value in found[key]["text"], found[key]
    check_findings, check_result = OUTCOME[(lesson_id, fixed)]
    assert check_findings(values), values
    assert check_result(data["result"]), data["result"]
    # every process ended, a hang included (the fixture checks that none is left), each with
    # its exit code (main-guard's program.py too, reaped by subprocess: issue 12)
    assert all(p["ended_at"] is not None and p["exitcode"] is not None
               for p in data["processes"]), data["processes"]


def test_last_exception_reads_a_traceback_as_printed():
    from mpdash.lessons._output import last_exception
    bootstrapping = ["Traceback (most recent call last):", '  File "p.py", line 3, in <module>',
                     "    p.start()", "RuntimeError: ", "",
                     "        An attempt has been made to start a new process before the",
                     "        current process has finished its bootstrapping phase.", "",
                     "        This probably means that you are not using fork"]
    assert last_exception(bootstrapping) == (
        "RuntimeError: An attempt has been made to start a new process before the current "
        "process has finished its bootstrapping phase.")
    assert last_exception(["Traceback (most recent call last):", "  ...",
                           "_pickle.PicklingError: Can't pickle <function <lambda>>"]) == \
        "_pickle.PicklingError: Can't pickle <function <lambda>>"
    # the last exception wins (a chained traceback prints the cause first)
    assert last_exception(["KeyError: 'a'", "", "During handling of the above exception, "
                           "another exception occurred:", "ValueError: bad"]) == "ValueError: bad"
    assert last_exception(["top level runs in pid 12", "note: something"]) is None


# ------------------------------------------------------------------------------ claims
def test_queue_deadlock_only_past_the_pipe_buffer(dashboard):
    small = findings(run_lesson(dashboard, "queue-deadlock", {"kilobytes": 16}))
    assert small["deadlocked"] is False and small["waited_s"] < 5, small
    assert small["item_bytes"] == 16 * 1024
    # The pipe's size is read from the kernel, not assumed (Linux: 64 KiB unless changed).
    with open("/proc/sys/fs/pipe-max-size") as f:
        assert 4096 <= small["pipe_buffer_bytes"] <= int(f.read())
    big = findings(run_lesson(dashboard, "queue-deadlock", {"kilobytes": 64}))
    assert big["pipe_buffer_bytes"] == 65536 and big["deadlocked"] is True, big


def test_main_guard_fork_reimports_nothing_spawn_and_forkserver_fail(dashboard):
    data = run_lesson(dashboard, "main-guard", {"start_method": "fork", "children": 3})
    assert findings(data)["children_failed"] == 0
    hello = [l for l in data["output"] if l["text"].endswith(": hello")]
    assert len(hello) == 3
    data = run_lesson(dashboard, "main-guard", {"start_method": "forkserver"})
    found = findings(data)
    assert found["children_failed"] == 2 and found["child_error"].startswith("RuntimeError:")
    # each crashed child printed the top level itself: the re-import is visible per pid
    crashed = {p["pid"] for p in data["processes"] if p["exitcode"] == 1}
    tops = {l["pid"] for l in data["output"] if "top level runs in pid" in l["text"]}
    assert len(crashed) == 2 and crashed <= tops


def test_main_guard_error_is_read_from_the_childs_stderr(dashboard):
    data = run_lesson(dashboard, "main-guard", {"children": 1})
    child = next(p for p in data["processes"] if p["exitcode"] == 1)
    err = [l["text"] for l in data["output"] if l["pid"] == child["pid"] and l["stream"] == "err"]
    assert any(t.startswith("RuntimeError:") for t in err), err
    assert findings(data)["children_failed"] == 1


def test_globals_under_spawn_start_from_the_import(dashboard):
    found = findings(run_lesson(dashboard, "globals-not-shared",
                                {"start_method": "spawn", "processes": 2, "times": 500}))
    assert found == {"start_method": "spawn", "child_values": [500, 500], "parent_value": 0}


def test_pickling_a_local_function_fails_too_and_spawn_the_same(dashboard):
    data = run_lesson(dashboard, "pickling", {"start_method": "spawn"})
    text = next(f["text"] for f in data["findings"] if f["key"] == "error")
    assert "main.<locals>.cube" in text and "PicklingError" in text
    assert data["state"] == "finished"


def test_fork_with_threads_warning_where_python_gives_one(dashboard):
    found = findings(run_lesson(dashboard, "fork-with-threads"))
    if sys.version_info >= (3, 12):
        assert "multi-threaded, use of fork() may lead to deadlocks" in found["warning"]
    else:
        assert found["warning"] is None
    assert found["child_hung"] is True


def speedup_until(dashboard, fixed, good, tries):
    """Run pool-overhead until ``good(speedup)`` or ``tries`` runs: what each run measured."""
    seen = []
    for _ in range(tries):
        data = run_lesson(dashboard, "pool-overhead", {"fixed": fixed})
        seen.append({"speedup": findings(data)["speedup"], **data["result"],
                     "load": round(os.getloadavg()[0], 1)})
        if good(seen[-1]["speedup"]):
            break
    return seen


@pytest.mark.skipif((os.cpu_count() or 1) < 2, reason="a pool can only win on two cores")
def test_pool_overhead_tiny_tasks_lose_batches_win(dashboard):
    # Each run times both sides best of 3, alternately; a busy machine can still starve one
    # side for a whole run, so a claim gets a few runs, then fails (never skips).
    slow = speedup_until(dashboard, False, lambda s: s < 1, tries=3)
    assert slow[-1]["speedup"] < 1, f"chunksize 1 should lose to the loop: {slow}"
    fast = speedup_until(dashboard, True, lambda s: s > 1.2, tries=6)
    # Whatever the load: batching cuts the pool's own time to well under half.
    assert min(f["pool_s"] for f in fast) < 0.5 * min(s["pool_s"] for s in slow), (slow, fast)
    if fast[-1]["speedup"] > 1.2:
        return
    # No win in 6 runs. A pool wins only by the CPU it gets: under scheduler autogrouping a
    # saturated machine can give its workers hardly more CPU than the loop had. Only then is
    # the claim out of reach, and the batched pool must still have turned its CPU into speed
    # (a regression to one message per item would not: its workers wait for messages, and
    # its speedup falls far below its CPU ratio).
    ratio = [round(f["pool_cores"] / f["loop_cores"], 2) for f in fast]
    assert max(ratio) < 1.5, f"batches should beat the loop given the CPU: {ratio} {fast}"
    assert all(f["speedup"] >= 0.6 * r for f, r in zip(fast, ratio)), (ratio, fast)
    print(f"machine saturated, the > 1.2× win not reachable: CPU ratios {ratio}, {fast}")


# The two hangs, seen by the stall detection (issue 11): where each process waits, kept in the
# run, and the lesson ends within 10 s of the stall. (Function names, not lines: they are the
# standard library's own, the same on every Python the product supports.)
HANGS = {
    "queue-deadlock": lambda main, child: "join" in main and {"_feed", "_send"} <= child,
    "fork-with-threads": lambda main, child: "join" in main and "take_lock" in child,
}


@pytest.mark.skipif(not HAS_STACKS, reason="needs issue 11 (stacks and stall detection)")
@pytest.mark.parametrize("lesson_id", sorted(HANGS))
def test_a_hang_keeps_its_stall_snapshot_and_ends_itself(dashboard, lesson_id):
    data = run_lesson(dashboard, lesson_id)
    assert data["state"] == "finished", data["error"]
    stalls = [s for s in data["stacks"] if s["reason"] == "stall"]
    assert len(stalls) == 1, data["stacks"]
    assert any(e["kind"] == "stall" for e in data["events"])
    assert data["ended_at"] - stalls[0]["t"] < 10
    main_pid = next(p["pid"] for p in data["processes"] if p["role"] == "main")
    frames = {p["pid"]: {f["function"] for t in p["threads"] for f in t["frames"]}
              for p in stalls[0]["processes"]}
    child = set().union(*(names for pid, names in frames.items() if pid != main_pid))
    assert HANGS[lesson_id](frames[main_pid], child), frames


@pytest.mark.parametrize("lesson_id", ["queue-deadlock", "fork-with-threads"])
def test_stop_during_the_hang_leaves_nothing(dashboard, lesson_id):
    run = dashboard.engine.start_lesson(lesson_id, {})
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and len(run.live_pids()) < 2:   # main + the stuck child
        time.sleep(0.05)
    time.sleep(1.0)                       # well inside the 6 s wait
    dashboard.engine.stop(run.id)
    dashboard.engine.wait(run.id, timeout=10)
    data = dashboard.hub.snapshot(run)
    assert data["state"] == "stopped", data["state"]
    assert len(data["processes"]) >= 2 and all(p["ended_at"] for p in data["processes"])
    # (the dashboard fixture then proves no process of the run is left)
