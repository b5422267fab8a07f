"""Every lesson runs with its defaults and gives the tutorial's result and its findings."""
from __future__ import annotations

import pytest

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


def run_lesson(dashboard, lesson_id, params=None, timeout=60):
    run = dashboard.engine.start_lesson(lesson_id, params or {})
    dashboard.engine.wait(run.id, timeout=timeout)
    data = dashboard.hub.snapshot(run)
    if data["state"] == "finished":   # whatever its parameters, a finished run has one verdict
        assert [f["headline"] for f in data["findings"]].count(True) == 1, data["findings"]
    return data


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
    # The verdict the page shows in large type: exactly one finding is this run's headline.
    headlines = [f["key"] for f in data["findings"] if f["headline"] is True]
    assert len(headlines) == 1, (headlines, data["findings"])
    assert all(f["headline"] in (True, False) for f in data["findings"])
    for finding in found.values():
        assert finding["text"] and isinstance(finding["value"], (int, float, bool, str))
        value = finding["value"]
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            # written from this run's numbers: the value (as printed) is in the sentence
            shown = {f"{value}", f"{value:,}", f"{value:.0f}", f"{value:.1f}", f"{value:,.0f}",
                     f"{value / 1024:.0f}", f"{value / 2**20:.1f}", f"{value:.3f}"}
            assert any(s in finding["text"] for s in shown), finding


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


def test_pool_chunksize_and_imap_unordered(dashboard):
    data = run_lesson(dashboard, "pool-map", {"items": 20, "chunksize": 5,
                                               "method": "imap_unordered"})
    assert data["state"] == "finished", data["error"]
    assert sorted(data["result"]) == [n * n for n in range(1, 21)]
    ends = [e for e in data["events"] if e["kind"] == "task_end"]
    assert len(ends) == 4 and all(e["items"] == 5 for e in ends)
