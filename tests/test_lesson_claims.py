"""The physical claims the lessons make, checked with margins a busy 2-core machine keeps."""
from __future__ import annotations

import os
import time

import pytest

from tests.conftest import run_lesson


def findings(data) -> dict:
    assert data["state"] == "finished", data["error"]
    return {f["key"]: f["value"] for f in data["findings"]}


_BURN = """
import os, sys, time
start = float(sys.argv[1])
time.sleep(max(0.0, start - time.time()))
t0, cpu = time.monotonic(), time.process_time() + 0.2
while time.process_time() < cpu:
    pass
print(time.monotonic() - t0)
"""


def _two_cores_free() -> tuple[bool, list[float]]:
    """Could a run get two cores right now? Two CPU-bound processes burn 0.2 s of CPU each at
    the same moment: each must get most of a core (wall time under 0.3 s)."""
    import subprocess
    import sys
    start = time.time() + 0.3
    procs = [subprocess.Popen([sys.executable, "-c", _BURN, str(start)], stdout=subprocess.PIPE,
                              text=True) for _ in range(2)]
    walls = [float(p.communicate(timeout=30)[0]) for p in procs]
    return all(w < 0.3 for w in walls), walls


@pytest.mark.skipif((os.cpu_count() or 1) < 2, reason="needs two cores")
def test_processes_beat_threads_on_cpu_bound_work(dashboard):
    # Other work on the machine can steal a core for a whole phase, so compare each side's
    # best time over alternating tries (the usual way to time through noise). Load never turns
    # this into a skip. A try is "quiet" when two cores were free just before it (measured, not
    # the load average); quiet tries must show the full claim (>= 1.3x). When the machine stays
    # busy for the whole budget (two busy loops, say), the tries still run and must show the
    # claim that survives sharing: two processes get more CPU than one thread (>= 1.15x; a
    # regression that runs the workers one after the other gives <= 1.0x).
    quiet, loaded, busy = [], [], []
    deadline, waited_since = time.monotonic() + 75, time.monotonic()
    while len(quiet) < 4 and len(quiet) + len(loaded) < 6 and time.monotonic() < deadline:
        free, walls = _two_cores_free()
        if not free and time.monotonic() - waited_since < 8:
            busy.append(walls)
            time.sleep(1.0)
            continue
        data = run_lesson(dashboard, "threads-vs-processes", {"workers": 2, "work": 30_000_000})
        (quiet if free else loaded).append((data["result"], findings(data)))
        waited_since = time.monotonic()
        tries = quiet or loaded
        if min(r["threads_s"] for r, _ in tries) >= 1.3 * min(r["processes_s"] for r, _ in tries) \
                and len(tries) >= 2:
            break
    tries = quiet or loaded
    assert tries, f"no try ran in 75 s (burn walls {busy[-5:]}, load {os.getloadavg()})"
    best_threads = min(r["threads_s"] for r, _ in tries)
    best_processes = min(r["processes_s"] for r, _ in tries)
    margin = 1.3 if quiet else 1.15
    assert best_threads >= margin * best_processes, (margin, os.getloadavg(), len(busy), tries)
    all_tries = quiet + loaded
    assert all(f["threads_peak_cpu"] < 150 for _, f in all_tries), all_tries   # one GIL: ~one core
    if quiet:
        assert max(f["processes_peak_cpu"] for _, f in quiet) > 100, quiet   # more than one core
    # Measured, never clamped to look right: a thread's stack costs some pages, a process more.
    for _, found in all_tries:
        assert 0 < found["rss_per_thread_bytes"] < found["rss_per_process_bytes"], found


def test_threads_do_as_well_on_io_bound_work(dashboard):
    found = findings(run_lesson(dashboard, "threads-vs-processes",
                                {"workers": 2, "io_bound": True, "seconds": 0.3}))
    assert found["speedup"] < 1.3, found   # nothing for processes to win while waiting


def test_unlocked_increments_lose_updates_locked_do_not(dashboard):
    processes, times = 4, 100_000
    data = run_lesson(dashboard, "race-condition", {"processes": processes, "times": times})
    found = findings(data)
    total = processes * times          # this test's own count, not the lesson's
    assert found["expected"] == total
    # Each process adds its `times` at least once it runs alone for a while; with others at
    # the same time some of the increments are lost, never more are made.
    assert times <= found["unlocked_total"] < total
    assert found["locked_total"] == total
    assert found["lost_updates"] == total - found["unlocked_total"] > 0
    # What the main printed (the counter it read back) is what the findings say.
    assert f"unlocked {found['unlocked_total']} " in data["output"][0]["text"]
    assert f"locked {total} " in data["output"][0]["text"]


@pytest.mark.parametrize("crash,code", [("exception", 1), ("exit", 3), ("abort", -6),
                                        ("segfault", -11)])
def test_crash_exit_codes_and_survivors(dashboard, crash, code):
    exits = []
    dashboard.hub.subscribe(lambda name, m: exits.append(m) if name == "proc"
                            and m["kind"] == "exit" else None)
    data = run_lesson(dashboard, "crash-isolation", {"crash": crash, "seconds": 0.2})
    found = findings(data)
    assert found["crashed_exitcode"] == code
    assert found["survivors_ok"] is True
    crashed = [p for p in data["processes"] if p["exitcode"] == code and p["role"] == "worker"]
    assert len(crashed) == 1 and crashed[0]["end"] == "crash"
    # A signal's code arrives after the exit (from the parent's reaping): meanwhile the exit
    # is announced with end null, never as "killed" (which means Stop or a limit).
    said = [m["end"] for m in exits if m["pid"] == crashed[0]["pid"]]
    assert said[-1] == "crash" and set(said) <= {None, "crash"}, said


def test_daemon_is_terminated_nondaemon_completes(dashboard):
    data = run_lesson(dashboard, "daemon", {"main_seconds": 0.3, "step_seconds": 0.15})
    found = findings(data)
    assert found["daemon_terminated"] is True and found["nondaemon_completed"] is True
    daemon = next(p for p in data["processes"] if p["daemon"])
    assert daemon["exitcode"] == -15 and daemon["end"] == "terminated"
    other = next(p for p in data["processes"] if p["role"] == "worker" and not p["daemon"])
    assert other["exitcode"] == 0
    assert daemon["ended_at"] < other["ended_at"]


def test_process_costs_order(dashboard):
    found = findings(run_lesson(dashboard, "process-costs", {"megabytes": 8, "repeats": 2}))
    assert found["start_ms_thread"] < found["start_ms_fork"] < found["start_ms_spawn"]
    assert found["start_ms_thread"] < found["start_ms_forkserver"]
    assert found["rss_per_thread_bytes"] * 20 < found["rss_per_process_bytes"]
    for key in ("pipe_mb_s", "queue_mb_s", "shared_mb_s"):
        assert found[key] > 0


def test_shared_memory_seen_by_parent_under_spawn(dashboard):
    data = run_lesson(dashboard, "shared-memory", {"length": 10, "start_method": "spawn"})
    assert data["result"] == {"num": 15, "arr": list(range(2, 12))}
