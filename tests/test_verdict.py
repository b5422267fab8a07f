"""The verdict of a run (issue 16): one headline finding, written from the run's own numbers."""
from __future__ import annotations

import re
import sys
import textwrap

from mpdash import verdict


def run_json(dashboard, lesson_id, params, timeout=60):
    run = dashboard.engine.start_lesson(lesson_id, params)
    dashboard.engine.wait(run.id, timeout=timeout)
    return dashboard.hub.snapshot(run)


def headline(data):
    marked = [f for f in data["findings"] if f["headline"]]
    assert len(marked) == 1, data["findings"]
    return marked[0]


def test_one_headline_keeps_the_last_one_marked():
    found = verdict.one_headline([{"key": "a", "headline": True}, {"key": "b"},
                                  {"key": "c", "headline": True}])
    assert [f["headline"] for f in found] == [False, False, True]
    assert [f["headline"] for f in verdict.one_headline([{"key": "a"}])] == [False]


def test_cpu_seconds_integrates_each_reading_over_its_own_interval():
    frames = [{"t": 10.0, "pid": [1, 2], "cpu": [50.0, 30.0]},    # first readings: since the start
              {"t": 10.5, "pid": [1, 2], "cpu": [100.0, 20.0]},
              {"t": 11.5, "pid": [1], "cpu": [40.0]}]
    used = verdict.cpu_seconds(frames, {1: 9.0})                  # pid 2's start is unknown
    assert abs(used[1] - (0.5 + 0.5 + 0.4)) < 1e-9
    assert abs(used[2] - 0.1) < 1e-9


def test_race_condition_verdicts_differ_with_the_params(dashboard):
    texts = []
    for processes, times in ((2, 20_000), (3, 30_000)):
        data = run_json(dashboard, "race-condition", {"processes": processes, "times": times})
        assert data["state"] == "finished", data["error"]
        top = headline(data)
        assert top["key"] == "lost_updates"
        expected, locked = data["result"]["expected"], data["result"]["locked"]
        assert expected == processes * times
        assert f"{expected:,}" in top["text"] and f"{top['value']:,}" in top["text"]
        assert top["value"] == expected - data["result"]["unlocked"]
        assert f"{expected - locked:,} with" in top["text"]
        texts.append(top["text"])
    assert texts[0] != texts[1]


def test_daemon_verdict_counts_how_far_the_daemon_got(dashboard):
    data = run_json(dashboard, "daemon", {"main_seconds": 0.3, "steps": 6, "step_seconds": 0.2})
    assert data["state"] == "finished", data["error"]
    top = headline(data)
    assert top["key"] == "daemon_terminated"
    daemon = next(p for p in data["processes"] if p["daemon"] and p["role"] == "worker")
    counted = sum(1 for line in data["output"] if line["pid"] == daemon["pid"])
    assert counted < 6 and f"counted to {counted} of 6" in top["text"]
    assert str(daemon["exitcode"]) in top["text"]


def test_threads_vs_processes_verdict_names_both_times(dashboard):
    data = run_json(dashboard, "threads-vs-processes", {"workers": 2, "work": 2_000_000})
    assert data["state"] == "finished", data["error"]
    top = headline(data)
    assert top["key"] == "speedup"
    r = data["result"]
    shown = re.match(r"2 processes finished in ([0-9.]+) s, .* 2 threads \(([0-9.]+) s\)", top["text"])
    assert shown, top["text"]
    assert abs(float(shown[1]) - r["processes_s"]) < 0.006 and abs(float(shown[2]) - r["threads_s"]) < 0.006


BUSY = textwrap.dedent("""
    import multiprocessing, sys, time

    def spin(seconds):
        end = time.process_time() + seconds
        while time.process_time() < end:
            pass

    if __name__ == "__main__":
        p = multiprocessing.Process(target=spin, args=(0.6,))
        p.start()
        p.join()
        print("done", p.exitcode)
        sys.exit(3)
""")


def test_a_watched_programs_verdict_is_how_it_ended_and_its_busiest_process(dashboard, tmp_path):
    script = tmp_path / "busy.py"
    script.write_text(BUSY)
    run = dashboard.engine.start_command([sys.executable, str(script)])
    dashboard.engine.wait(run.id, timeout=60)
    data = dashboard.hub.snapshot(run)
    assert data["state"] == "failed"
    top = headline(data)
    assert top["key"] == "verdict"
    assert "busy.py exited 3 after" in top["text"] and str(tmp_path) not in top["text"]
    child = next(p for p in data["processes"] if p["role"] == "worker")
    assert f"(pid {child['pid']})" in top["text"], top["text"]
    shown = re.search(r"used ([0-9.]+) s of CPU in the ([0-9.]+) s it lived", top["text"])
    seconds, lived = float(shown[1]), float(shown[2])
    assert seconds == top["value"] and seconds <= lived
    # The child spun for 0.6 s of its own CPU time: the frames add up to about that (the last
    # sample may come before its end; the kernel counts in 10 ms ticks).
    assert 0.3 <= seconds <= 0.6 + 0.05, top["text"]
    assert abs(lived - (child["ended_at"] - child["started_at"])) < 0.01


def test_a_run_stored_before_headlines_comes_back_with_headline_false(tmp_path):
    import json
    import os
    import sqlite3

    from mpdash.dashboard import Dashboard
    from mpdash.store import DB_NAME
    from tests.leaks import assert_none_left

    with Dashboard(data_dir=str(tmp_path)) as dash:
        run = dash.engine.start_lesson("shared-memory", {})
        dash.engine.wait(run.id, timeout=30)
        assert headline(dash.hub.snapshot(run))["key"] == "num"
    assert_none_left(os.getpid())
    db = sqlite3.connect(tmp_path / DB_NAME)   # as an older mpdash wrote it: no headline field
    summary = json.loads(db.execute("SELECT summary FROM runs WHERE id = ?", (run.id,)).fetchone()[0])
    for finding in summary["findings"]:
        del finding["headline"]
    db.execute("UPDATE runs SET summary = ? WHERE id = ?", (json.dumps(summary), run.id))
    db.commit()
    db.close()
    with Dashboard(data_dir=str(tmp_path)) as dash:
        findings = dash.hub.snapshot(dash.hub.get(run.id))["findings"]
    assert findings and all(f["headline"] is False for f in findings)
