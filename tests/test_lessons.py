"""Every lesson runs with its defaults and gives the tutorial's result and its findings."""
from __future__ import annotations

import re

import pytest

from tests.conftest import run_lesson

# lesson id -> (expected result, or a check of it; finding keys it must state)
EXPECTED = {
    "process-target": (None, {"printing_processes", "first"}),
    "process-subclass": (None, {"printing_processes", "first"}),
    "threads-vs-processes": (lambda r: set(r) == {"threads_s", "processes_s"},
                             {"speedup", "threads_peak_cpu", "processes_peak_cpu",
                              "rss_per_thread_bytes", "rss_per_process_bytes"}),
    "queue": (25, {"received"}),
    "pipe": ([1, 2, 3], {"recv_wait_ms"}),
    "shared-memory": ({"num": 15, "arr": [2, 3, 4]}, {"num"}),
    "race-condition": (lambda r: r["expected"] == 400_000 and r["locked"] == 400_000,
                       {"expected", "unlocked_total", "locked_total", "lost_updates"}),
    "pool-map": ([1, 4, 9, 16, 25], {"tasks_per_worker"}),
    "daemon": (None, {"daemon_terminated", "nondaemon_completed"}),
    "crash-isolation": (lambda r: r["crashed_exitcode"] == 1 and r["results"] == [1, 9, 16],
                        {"crashed_exitcode", "survivors_ok"}),
    "process-costs": (lambda r: len(r) == 9,
                      {"start_ms_fork", "start_ms_spawn", "start_ms_forkserver",
                       "start_ms_thread", "rss_per_process_bytes", "rss_per_thread_bytes",
                       "pipe_mb_s", "queue_mb_s", "shared_mb_s"}),
}


# ------------------------------------------------------------------ each finding, as written
# Written from this run's numbers: for each key, the number as the lesson prints it must be in
# the sentence, within half a unit of the printed precision (plus the value's own rounding).

def _number(pattern, text, scale=1.0):
    match = re.search(pattern, text)
    assert match, (pattern, text)
    return float(match.group(1).replace(",", "")) * scale


def _shows(pattern, scale=1.0, tolerance=0.0):
    def check(value, text, run):
        shown = _number(pattern, text, scale)
        assert abs(shown - value) <= tolerance, (value, shown, text)
    return check


def _size_shown(value, text, run):
    """process-costs' sizes: KiB under 1 MiB, MiB with one decimal above."""
    if value < 1 << 20:
        _shows(r"([\d,]+) KiB", 1024, 512 + 1)(value, text, run)
    else:
        _shows(r"([\d,.]+) MiB", 2**20, 2**20 * 0.05 + 1)(value, text, run)


def _speedup(value, text, run):
    if "about as fast as" in text:
        assert 0.95 <= value <= 1.05, (value, text)
    elif "faster than" in text:
        assert value >= 1 and abs(_number(r"([\d.]+)× faster", text) - value) <= 0.06, (value, text)
    else:
        assert value < 1 and abs(_number(r"([\d.]+)× slower", text) - 1 / value) <= 0.1, (value, text)


def _tasks(value, text, run):
    counts = [int(c) for c in value.split("/")]
    assert _number(r"^(\d+) tasks? went", text) == sum(counts), (value, text)
    assert _number(r"went to (\d+) workers", text) == len(counts), (value, text)


def _workers_end(value, text, run):
    """pool-map: how the workers ended, counted by this test from the run's own exit codes."""
    workers = [p for p in run["processes"] if p["role"] == "worker"]
    exited = sum(1 for p in workers if p["exitcode"] == 0)
    sigterm = sum(1 for p in workers if p["exitcode"] == -15)
    assert value == f"{exited} exit 0 / {sigterm} SIGTERM", (value, workers)
    if exited:
        assert f"{exited} of {len(workers)} exited" in text, text
    if sigterm:
        assert f"{sigterm} of {len(workers)} w" in text and "SIGTERM" in text, text


def _before_after(value, text, run):
    """shared-memory: 5 before the child wrote, the result's num after."""
    assert value == f"5 -> {run['result']['num']}", value
    assert f"num 5 → {run['result']['num']}" in text, text
    assert f"→ {run['result']['arr'][:8]}" in text, text


def _daemon(value, text, run):
    daemon = next(p for p in run["processes"] if p["daemon"])
    assert f"exit code {daemon['exitcode']}" in text, text
    assert value == ("(SIGTERM, sent by" in text), (value, text)


def _nondaemon(value, text, run):
    steps = run["params"]["steps"]
    assert value == (f"counted to {steps} of {steps}" in text and "code 0:" in text), (value, text)


def _survivors(value, text, run):
    ok, of = _number(r"^(\d+) of", text), _number(r"of (\d+) other", text)
    assert value == (ok == of and of > 0), (value, text)


def _first(value, text, run):
    assert text.startswith(f"{value} (pid "), (value, text)


def _gil(value, text, run):
    assert f"CPython {run['python']['version']} " in text, (run["python"], text)
    assert value == bool(run["python"].get("gil_enabled")), (value, run["python"])
    assert value == ("with a GIL," in text) and value != ("without a GIL" in text), (value, text)


SHOWN = {
    # Every pool's insights (mpdash/pools.py); a second pool's keys carry ".<pool id>".
    "pool_busy": _shows(r"were busy ([\d.]+) %"),
    "pool_spread": _shows(r"the most ([\d.]+)× the mean"),
    "pool_slowest": _shows(r"slowest task took ([\d.]+) ms"),
    "pool_dispatch": _shows(r"\(([\d.]+)× the work\)"),
    "gil_enabled": _gil,
    "printing_processes": _shows(r"^(\d+) process"),
    "first": _first,
    "speedup": _speedup,
    "threads_peak_cpu": _shows(r"used at most (\d+)% CPU", tolerance=0.5),
    "processes_peak_cpu": _shows(r"used at most (\d+)% CPU", tolerance=0.5),
    "rss_per_thread_bytes": lambda v, t, r: (_size_shown if r["lesson"] == "process-costs"
                                             else _shows(r"added (\d+) KiB", 1024, 512))(v, t, r),
    "rss_per_process_bytes": lambda v, t, r: (_size_shown(v, t, r) if r["lesson"] == "process-costs"
                                              else _shows(r"had ([\d.]+) MiB", 2**20,
                                                          2**20 * 0.05)(v, t, r)),
    "received": _shows(r"(?:got |^)(\d+)"),
    "recv_wait_ms": _shows(r"for ([\d.]+) ms", tolerance=0.051),
    "round_trip_us": _shows(r"messages: (\d+) µs", tolerance=0.51),
    "num": _shows(r"num.value = (-?\d+)"),
    "expected": _shows(r"should give ([\d,]+)"),
    "unlocked_total": _shows(r"ended at ([\d,]+)"),
    "locked_total": _shows(r"ended at ([\d,]+)"),
    "lost_updates": lambda v, t, r: (_shows(r"^([\d,]+) of [\d,]+ updates lost")(v, t, r) if v
                                     else None if t.startswith("No update of ")
                                     else pytest.fail(t)),
    "tasks_per_worker": _tasks,
    "workers_end": _workers_end,
    "before_after": _before_after,
    "daemon_terminated": _daemon,
    "nondaemon_completed": _nondaemon,
    "crashed_exitcode": _shows(r"exit code (-?\d+)"),
    "survivors_ok": _survivors,
    "start_ms_thread": _shows(r"in ([\d.]+) ms", tolerance=0.0006),
    "start_ms_fork": _shows(r"in ([\d.]+) ms", tolerance=0.051),
    "start_ms_forkserver": _shows(r"took ([\d.]+) ms", tolerance=0.051),
    "start_ms_spawn": _shows(r"took ([\d.]+) ms", tolerance=0.051),
    "pipe_mb_s": _shows(r"moved ([\d,]+) MiB/s", tolerance=0.5),
    "queue_mb_s": _shows(r"moved ([\d,]+) MiB/s", tolerance=0.5),
    "shared_mb_s": _shows(r"at ([\d,]+) MiB/s", tolerance=0.5),
}


@pytest.mark.parametrize("lesson_id", sorted(EXPECTED))
def test_defaults_reproduce_the_tutorial(dashboard, lesson_id):
    data = run_lesson(dashboard, lesson_id)
    assert data["state"] == "finished", data["error"]
    expected, keys = EXPECTED[lesson_id]
    if callable(expected):
        assert expected(data["result"]), data["result"]
    else:
        assert data["result"] == expected
    found = {f["key"]: f for f in data["findings"]}
    assert keys <= set(found), sorted(found)
    assert data["error"] is None, data["error"]   # e.g. the lesson's analysis raised
    # The verdict the page shows in large type: exactly one finding is this run's headline.
    headlines = [f["key"] for f in data["findings"] if f["headline"] is True]
    assert len(headlines) == 1, (headlines, data["findings"])
    assert all(f["headline"] in (True, False) for f in data["findings"])
    for finding in found.values():
        assert finding["text"] and isinstance(finding["value"], (int, float, bool, str))
        key = finding["key"].split(".", 1)[0]
        assert key in SHOWN, f"no check of how {finding['key']!r} is written"
        SHOWN[key](finding["value"], finding["text"], data)


def test_tutorial_lines_are_printed_by_the_children(dashboard):
    data = run_lesson(dashboard, "process-target")
    main = next(p["pid"] for p in data["processes"] if p["role"] == "main")
    lines = [l for l in data["output"] if l["text"].startswith("Number: ")]
    assert len(lines) == 10
    pids = {l["pid"] for l in lines}
    assert len(pids) == 2 and main not in pids


def test_calling_run_directly_prints_from_the_main(dashboard):
    data = run_lesson(dashboard, "process-subclass", {"call_run": True})
    main = next(p["pid"] for p in data["processes"] if p["role"] == "main")
    assert {l["pid"] for l in data["output"] if ": " in l["text"]} == {main}
    assert len(data["processes"]) == 1


@pytest.mark.parametrize("start_method", ["spawn", "forkserver"])
def test_ipc_results_under_other_start_methods(dashboard, start_method):
    for lesson_id in ("queue", "pipe", "shared-memory", "pool-map"):
        data = run_lesson(dashboard, lesson_id, {"start_method": start_method})
        assert data["state"] == "finished", data["error"]
        assert data["result"] == EXPECTED[lesson_id][0]


def test_queue_with_many_producers_and_consumers(dashboard):
    data = run_lesson(dashboard, "queue", {"producers": 3, "items": 500, "consumers": 2})
    assert data["state"] == "finished", data["error"]
    numbers = range(5, 5 + 3 * 500)
    assert data["result"] == {"items": 1500, "sum": sum(n * n for n in numbers)}


def test_pipe_ping_pong(dashboard):
    data = run_lesson(dashboard, "pipe", {"mode": "ping-pong", "round_trips": 50})
    assert data["state"] == "finished", data["error"]
    rtt = next(f for f in data["findings"] if f["key"] == "round_trip_us")
    assert 0 < rtt["value"] < 1_000_000
    # The result is what came back (each message echoed), not the parameter handed in.
    assert data["result"] == {"echoed": 50, "median_us": rtt["value"]}
    SHOWN["round_trip_us"](rtt["value"], rtt["text"], data)


def test_pool_chunksize_and_imap_unordered(dashboard):
    data = run_lesson(dashboard, "pool-map", {"items": 20, "chunksize": 5,
                                               "method": "imap_unordered"})
    assert data["state"] == "finished", data["error"]
    assert sorted(data["result"]) == [n * n for n in range(1, 21)]
    ends = [e for e in data["events"] if e["kind"] == "task_end"]
    assert len(ends) == 4 and all(e["items"] == 5 for e in ends)


@pytest.mark.parametrize("code, terminate, value, signal_text", [
    (-15, True, True, "SIGTERM, sent by terminate() at its main's exit"),
    (-15, False, False, "SIGTERM, not sent by its main"),   # someone else's SIGTERM
    (-9, False, False, "SIGKILL, not sent by its main"),
    (-9, True, False, "SIGKILL, sent by terminate() at its main's exit"),
    (0, False, False, None),
])
def test_daemon_terminated_reports_what_the_run_saw(code, terminate, value, signal_text):
    """Not any negative code, and not SIGTERM read off -15 alone: the signal of the exit code,
    and whether the run saw a terminate() of that child."""
    from types import SimpleNamespace
    from mpdash.lessons import daemon
    pid = 4242
    run = SimpleNamespace(
        params={"steps": 5}, output=[{"pid": pid, "text": "daemon: 1"}],
        events=[{"kind": "terminate", "channel": str(pid)}] if terminate else [],
        processes={pid: {"pid": pid, "role": "worker", "start_method": "fork", "daemon": True,
                         "exitcode": code}})
    (found,) = daemon.analyze(run)
    assert found["key"] == "daemon_terminated" and found["value"] is value, found
    assert f"exit code {code}" in found["text"]
    if signal_text:
        assert f"({signal_text})" in found["text"], found["text"]
    else:
        assert "SIG" not in found["text"], found["text"]
