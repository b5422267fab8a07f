"""Exports: metrics as CSV, the run as a Chrome trace (Perfetto's legacy JSON)."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from mpdash import export
from mpdash.runs import PROJECT_ROOT
from tests.conftest import check_csv, check_trace


def _synthetic_run() -> dict:
    """A run with every kind of item the exporter handles, in the Run JSON shape."""
    t0 = 1000.0
    proc = dict(ppid=1, daemon=False, orphan=False, start_method="fork", seq=1)
    return {
        "id": "rtest", "lesson": "watch", "title": "python x.py", "state": "finished",
        "started_at": t0, "ended_at": t0 + 2, "command": ["python", "x.py"], "error": None,
        "processes": [
            {**proc, "pid": 10, "name": "MainProcess", "role": "main", "start_method": None,
             "started_at": t0, "ended_at": t0 + 2, "exitcode": 0, "end": "exit"},
            {**proc, "pid": 11, "name": "ForkPoolWorker-1", "role": "worker", "daemon": True,
             "started_at": t0 + 0.1, "ended_at": t0 + 1.5, "exitcode": -15, "end": "terminated"},
            {**proc, "pid": 12, "name": "Process-2", "role": "worker",
             "started_at": t0 + 0.1, "ended_at": None, "exitcode": None, "end": None},
        ],
        "events": [
            {"seq": 5, "t": t0 + 0.2, "pid": 11, "kind": "task_start", "channel": "pool",
             "msg": 1, "size": None, "detail": "square(1)"},
            {"seq": 6, "t": t0 + 0.3, "pid": 11, "kind": "task_end", "channel": "pool",
             "msg": 1, "size": 8, "detail": "1"},
            {"seq": 7, "t": t0 + 0.4, "pid": 11, "kind": "task_start", "channel": "pool",
             "msg": 2, "size": None, "detail": "square(2)"},      # never ends: the worker died
            {"seq": 8, "t": t0 + 0.5, "pid": 12, "kind": "queue_put", "channel": "q1",
             "msg": 7, "size": 20, "detail": "25"},
            {"seq": 9, "t": t0 + 0.6, "pid": 10, "kind": "queue_get", "channel": "q1",
             "msg": 7, "size": 20, "detail": "25"},
            {"seq": 10, "t": t0 + 0.7, "pid": 12, "kind": "shared_write", "channel": "arr",
             "msg": None, "size": None, "detail": "arr[0] = 2", "index": 0},
            # The receiver's report arrived first (another connection): still one flow.
            {"seq": 11, "t": t0 + 0.85, "pid": 10, "kind": "pipe_recv", "channel": "p",
             "msg": 1, "size": 3, "detail": "[1]"},
            {"seq": 12, "t": t0 + 0.8, "pid": 99, "kind": "pipe_send", "channel": "p",
             "msg": 1, "size": 3, "detail": "[1]"},
        ],
        "metrics": [
            {"seq": 3, "t": t0 + 0.15, "cores": [50.0, 10.0], "pid": [10, 11, 12],
             "cpu": [1.5, 99.0, 0.0], "rss": [10000, 8000, 8100], "core": [0, 1, 0],
             "status": "SRS", "threads": [1, 1, 2]},
            {"seq": 4, "t": t0 + 0.25, "cores": [55.0, 12.0], "pid": [10, 12],
             "cpu": [2.0, 0.5], "rss": [10004, 8100], "core": [1, 0], "status": "SS",
             "threads": [1, 2]},
        ],
        "output": [{"seq": 13, "run": "rtest", "t": t0 + 0.9, "pid": 10, "stream": "out",
                    "text": "25"}],
        "marks": [{"t": t0 + 0.05, "label": "phase one", "detail": {"n": 3}}],
    }


def test_trace_of_a_synthetic_run_has_every_part():
    run = _synthetic_run()
    events = check_trace(export.chrome_trace(run), run)
    tasks = [e for e in events if e["ph"] == "X" and e["cat"] == "task"]
    assert [(t["pid"], t["tid"], t["args"]["msg"]) for t in tasks] == \
        [(11, 11 + export.TASKS_TID, 1), (11, 11 + export.TASKS_TID, 2)]
    assert tasks[0]["ts"] == pytest.approx(200_000) and tasks[0]["dur"] == pytest.approx(100_000)
    # The unfinished task ends with its worker (t0 + 1.5).
    assert tasks[1]["args"]["unfinished"] and tasks[1]["ts"] + tasks[1]["dur"] == pytest.approx(1_500_000)
    # The still-running process spans to the end of the run.
    live = next(e for e in events if e["ph"] == "X" and e["pid"] == 12 and e["cat"] == "process")
    assert live["args"]["running"] and live["ts"] + live["dur"] == pytest.approx(2_000_000)
    # IPC: instants for each, a flow from the put to the get; an unseen pid still gets a name.
    instants = {(e["name"], e["pid"]) for e in events if e["ph"] == "i" and e["cat"] == "ipc"}
    assert {("queue_put", 12), ("queue_get", 10), ("shared_write", 12), ("pipe_send", 99)} <= instants
    flow = sorted((e for e in events if e["ph"] in "sf"), key=lambda e: (e["id"], e["ph"]))
    assert [(e["ph"], e["pid"], e["name"]) for e in flow] == \
        [("f", 10, "q1"), ("s", 12, "q1"), ("f", 10, "p"), ("s", 99, "p")]
    assert all(f["ts"] >= s["ts"] for f, s in zip(flow[::2], flow[1::2]))
    shared = next(e for e in events if e["name"] == "shared_write")
    assert shared["args"]["index"] == 0     # fields beyond the contract's are kept
    counters = [e for e in events if e["ph"] == "C" and e["name"] == "rss"]
    assert [(c["pid"], c["args"]["rss_bytes"]) for c in counters[:3]] == \
        [(10, 10000 * 1024), (11, 8000 * 1024), (12, 8100 * 1024)]
    mark = next(e for e in events if e.get("cat") == "mark")
    assert mark["s"] == "g" and mark["args"] == {"n": 3} and mark["ts"] == pytest.approx(50_000)
    assert any(e["ph"] == "i" and e["cat"] == "output" and e["args"]["text"] == "25" for e in events)


def test_overlapping_tasks_of_one_process_get_their_own_threads():
    run = _synthetic_run()
    t0 = run["started_at"]
    run["events"] = [   # a ThreadPool: three tasks at once in the main process, then one more
        {"seq": 20 + i, "t": t0 + t, "pid": 10, "kind": kind, "channel": "ThreadPool-1",
         "msg": msg, "size": None, "detail": f"job {msg}"}
        for i, (t, kind, msg) in enumerate([
            (0.1, "task_start", "a"), (0.2, "task_start", "b"), (0.3, "task_start", "c"),
            (0.4, "task_end", "a"), (0.5, "task_end", "c"), (0.6, "task_end", "b"),
            (0.7, "task_start", "d"), (0.8, "task_end", "d")])]
    events = check_trace(export.chrome_trace(run), run)
    tasks = {e["args"]["msg"]: e["tid"] - 10 for e in events if e.get("cat") == "task"}
    lane = export.TASKS_TID
    assert tasks == {"a": lane, "b": 2 * lane, "c": 3 * lane, "d": lane}
    names = {e["tid"] - 10: e["args"]["name"] for e in events
             if e["ph"] == "M" and e["name"] == "thread_name" and e["pid"] == 10}
    assert names == {0: "MainProcess", lane: "tasks", 2 * lane: "tasks 2", 3 * lane: "tasks 3"}


def test_csv_of_a_synthetic_run():
    run = _synthetic_run()
    rows = check_csv(export.metrics_csv(run), run)
    assert rows[1] == {"t": "1000.15", "pid": "11", "cpu_percent": "99.0",
                       "rss_bytes": str(8000 * 1024), "core": "1", "status": "R", "threads": "1"}
    assert [r["pid"] for r in rows] == ["10", "11", "12", "10", "12"]


def test_exports_of_a_real_run_over_http(dashboard, client):
    run = dashboard.engine.start_lesson("pool-map", {"workers": 2, "items": 6, "spin": 0.05})
    dashboard.engine.wait(run.id, timeout=30)
    data = client.get(f"/api/runs/{run.id}").get_json()
    assert data["state"] == "finished"

    answer = client.get(f"/api/runs/{run.id}/metrics.csv")
    assert answer.status_code == 200 and answer.mimetype == "text/csv"
    assert answer.headers["Content-Disposition"] == \
        f'attachment; filename="mpdash-{run.id}-metrics.csv"'
    rows = check_csv(answer.get_data(as_text=True), data)
    assert len(rows) >= 3   # a frame at each birth at least
    assert {int(r["pid"]) for r in rows} >= {data["processes"][0]["pid"]}

    answer = client.get(f"/api/runs/{run.id}/trace.json")
    assert answer.status_code == 200 and answer.mimetype == "application/json"
    assert answer.headers["Content-Disposition"] == \
        f'attachment; filename="mpdash-{run.id}-trace.json"'
    events = check_trace(answer.get_json(), data)
    workers = [p for p in data["processes"] if p["role"] == "worker"]
    assert len(workers) == 2
    assert {e["pid"] for e in events if e["ph"] == "C" and e["name"] == "cpu %"} >= \
        {p["pid"] for p in workers}

    for route in ("metrics.csv", "trace.json"):
        assert client.get(f"/api/runs/nope/{route}").status_code == 404
        assert client.get(f"/api/runs/bad%20id/{route}").status_code == 404


def test_cli_run_writes_trace_and_csv(tmp_path):
    trace, table = tmp_path / "out.json", tmp_path / "out.csv"
    done = subprocess.run([sys.executable, "-m", "mpdash", "run", "process-target", "--json",
                           "--trace", str(trace), "--csv", str(table)],
                          cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    run = json.loads(done.stdout)
    check_trace(json.loads(trace.read_text()), run)
    check_csv(table.read_text(), run)
    bad = subprocess.run([sys.executable, "-m", "mpdash", "run", "process-target",
                          "--trace", str(tmp_path / "no" / "such" / "dir.json")],
                         cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=60)
    assert bad.returncode == 2 and "cannot write" in bad.stderr
    assert not os.path.exists(tmp_path / "no")
