"""Run history in SQLite: survives a restart, a crashed server's live run comes back failed."""
from __future__ import annotations

import collections
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
import urllib.request

from mpdash.dashboard import Dashboard
from mpdash.runs import PROJECT_ROOT
from mpdash.state import Hub, Run
from mpdash.store import CRASHED_ERROR, DB_NAME, Store
from tests.leaks import assert_none_left, run_processes
from tests.conftest import check_csv, check_trace, wait_until


def _without_duration(run: dict) -> dict:
    return {k: v for k, v in run.items() if k != "duration"}


def _app(dash):
    from mpdash.web import create_app
    return create_app(dash, {"TESTING": True}).test_client()


def test_a_run_survives_a_restart_with_its_exports(tmp_path):
    with Dashboard(data_dir=str(tmp_path)) as dash:
        run = dash.engine.start_lesson("pool-map", {"workers": 2, "items": 4, "spin": 0.05})
        dash.engine.wait(run.id, timeout=30)
        client = _app(dash)
        before = client.get(f"/api/runs/{run.id}").get_json()
        csv_before = client.get(f"/api/runs/{run.id}/metrics.csv").get_data(as_text=True)
        trace_before = client.get(f"/api/runs/{run.id}/trace.json").get_json()
        last_seq = dash.hub.seq
    assert_none_left(dash)
    assert before["state"] == "finished" and before["metrics"] and before["output"]

    with Dashboard(data_dir=str(tmp_path)) as dash:
        client = _app(dash)
        after = client.get(f"/api/runs/{run.id}").get_json()
        # Everything the page replays from: processes, output, events, metrics, marks.
        assert _without_duration(after) == _without_duration(before)
        assert client.get(f"/api/runs/{run.id}/metrics.csv").get_data(as_text=True) == csv_before
        assert client.get(f"/api/runs/{run.id}/trace.json").get_json() == trace_before
        check_csv(csv_before, after)
        check_trace(trace_before, after)
        assert [r["id"] for r in client.get("/api/runs").get_json()] == [run.id]
        # The sequence goes on after the stored one: ?since= stays meaningful.
        assert dash.hub.seq >= last_seq
        middle = after["output"][0]["seq"]
        partial = client.get(f"/api/runs/{run.id}?since={middle}").get_json()
        assert [l["seq"] for l in partial["output"]] == [l["seq"] for l in after["output"][1:]]
        # A new run after the restart is stored beside it; then the old one is deleted.
        second = dash.engine.start_lesson("process-target", {})
        dash.engine.wait(second.id, timeout=30)
        assert second.seq > last_seq
        assert client.delete(f"/api/runs/{run.id}").status_code == 204
    assert_none_left(dash)

    with Dashboard(data_dir=str(tmp_path)) as dash:
        assert set(dash.hub.runs) == {second.id}
        assert dash.hub.get(second.id).state == "finished"
    db = sqlite3.connect(tmp_path / DB_NAME)
    for table, column in (("runs", "id"), ("procs", "run"), ("lines", "run"),
                          ("events", "run"), ("frames", "run")):
        assert db.execute(f"SELECT count(*) FROM {table} WHERE {column} = ?",
                          (run.id,)).fetchone()[0] == 0
    assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    db.close()


def test_without_a_data_dir_nothing_is_stored(dashboard, tmp_path):
    assert dashboard.store is None
    assert not any(isinstance(getattr(listener, "__self__", None), Store)
                   for listener in dashboard.hub._listeners)


def test_writes_are_batched_and_live_runs_copied_as_they_go(tmp_path):
    """Thousands of changes, few transactions; a live run is on disk before it ends."""
    hub = Hub()
    store = Store(str(tmp_path))
    store.attach(hub)
    try:
        run = Run(id="rlive", lesson="watch", title="t", params={})
        hub.add_run(run)
        hub.set_state(run, "running")
        proc = hub.upsert_process(run, 4242, role="main", name="MainProcess")
        hub.publish_proc(run, proc, "start")
        for i in range(5000):
            hub.add_output(run, 4242, "out", f"line {i}", time.time())
        hub.add_frame({"t": time.time(), "cores": [1.0], "pid": [4242], "cpu": [3.0],
                       "rss": [900], "core": [0], "status": "R", "threads": [1]},
                      {run.id: [0]}, push=False)     # unpushed frames are stored all the same
        assert store.flush()
        assert store.rows >= 5000 + 3
        assert store.batches < store.rows / 10
        # Another Store sees the live run's owner (this process) alive: not its run to judge.
        assert Store(str(tmp_path)).load()[0] == []
    finally:
        store.close()
    assert Store(str(tmp_path)).load()[0] == []
    db = sqlite3.connect(tmp_path / DB_NAME)
    with db:
        db.execute("UPDATE runs SET owner = '99999999:0'")   # a server that is gone
    db.close()
    runs, max_seq = Store(str(tmp_path)).load()
    assert [r.id for r in runs] == ["rlive"]
    assert max_seq == hub.seq
    stored = runs[0]
    # Its owner is gone and never ended it: the run comes back failed.
    assert stored.state == "failed" and stored.error == CRASHED_ERROR
    assert len(stored.output) == 5000 and stored.output[-1]["text"] == "line 4999"
    assert len(stored.frames) == 1 and stored.frames[0]["rss"] == [900]
    assert stored.processes[4242]["end"] == "killed"
    assert stored.processes[4242]["ended_at"] == stored.ended_at >= stored.output[-1]["t"]


def test_the_file_keeps_what_memory_keeps_of_a_long_run(tmp_path):
    """A run's deques are bounded; rows they dropped leave the file too."""
    hub = Hub()
    store = Store(str(tmp_path))
    store.attach(hub)
    try:
        run = Run(id="rlong", lesson="watch", title="t", params={})
        run.output = collections.deque(maxlen=100)
        hub.add_run(run)
        for i in range(1000):
            hub.add_output(run, 1, "out", f"line {i}", time.time())
            if i % 150 == 0:
                assert store.flush()
        assert store.flush()
        db = sqlite3.connect(tmp_path / DB_NAME)
        texts = [t for (t,) in db.execute("SELECT text FROM lines WHERE run = 'rlong' ORDER BY seq")]
        db.close()
        assert texts == [l["text"] for l in run.output] == [f"line {i}" for i in range(900, 1000)]
    finally:
        store.close()


def _wait_for(predicate, timeout: float, what: str):
    value = wait_until(predicate, timeout=timeout, step=0.05)
    assert value, f"timed out waiting for {what}"
    return value


def _stored_live_run(path):
    if not os.path.exists(path):
        return None
    db = sqlite3.connect(path)
    try:
        row = db.execute("SELECT id FROM runs WHERE state = 'running'").fetchone()
        lines = db.execute("SELECT count(*) FROM lines").fetchone()[0]
        frames = db.execute("SELECT count(*) FROM frames").fetchone()[0]
    except sqlite3.OperationalError:
        return None
    finally:
        db.close()
    return row[0] if row and lines and frames else None


def test_a_run_live_when_the_server_was_killed_comes_back_failed(tmp_path):
    script = "import time\nprint('working', flush=True)\ntime.sleep(60)\n"
    server = subprocess.Popen(
        [sys.executable, "-m", "mpdash", "watch", "--port", "0", "--data", str(tmp_path),
         "--", sys.executable, "-c", script],
        cwd=PROJECT_ROOT, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE)
    try:
        run_id = _wait_for(lambda: _stored_live_run(tmp_path / DB_NAME), 20, "the live run on disk")
        # While that server lives, its live run is not ours to call crashed.
        assert run_id not in {r.id for r in Store(str(tmp_path)).load()[0]}
        server.send_signal(signal.SIGKILL)
        server.wait(timeout=10)
        _wait_for(lambda: not run_processes(server.pid), 5, "the run's processes to die")
    finally:
        if server.poll() is None:
            server.kill()
            server.wait()
        server.stderr.close()
    with Dashboard(data_dir=str(tmp_path)) as dash:
        client = _app(dash)
        run = client.get(f"/api/runs/{run_id}").get_json()
        assert run["state"] == "failed"
        assert "server stopped while this run was live" in run["error"]
        assert [l["text"] for l in run["output"]] == ["working"]
        assert run["metrics"] and all(p["ended_at"] is not None for p in run["processes"])
        # docs/API.md: `ended_at` is its last record; processes still open end then, killed.
        last = max([run["started_at"]] + [l["t"] for l in run["output"]]
                   + [f["t"] for f in run["metrics"]] + [e["t"] for e in run["events"]]
                   + [p["started_at"] for p in run["processes"]])
        open_ones = [p for p in run["processes"] if p["end"] == "killed"]
        assert run["ended_at"] >= last and run["ended_at"] - last < 1e-6, (run["ended_at"], last)
        assert open_ones and all(p["ended_at"] == run["ended_at"] for p in open_ones)
        check_trace(client.get(f"/api/runs/{run_id}/trace.json").get_json(), run)
    # Written back: the next start reads it as failed without judging again.
    db = sqlite3.connect(tmp_path / DB_NAME)
    state, summary = db.execute("SELECT state, summary FROM runs WHERE id = ?", (run_id,)).fetchone()
    db.close()
    assert state == "failed" and json.loads(summary)["error"] == CRASHED_ERROR


def test_app_py_keeps_history_in_its_data_dir(tmp_path):
    import socket
    # --port 0: the server binds a free port and prints it (a port found free here and closed
    # again could be taken by another process before the server binds it).
    server = subprocess.Popen([sys.executable, "app.py", "--port", "0", "--data", str(tmp_path)],
                              cwd=PROJECT_ROOT, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE)
    try:
        line = server.stdout.readline().decode()
        assert "serving on http://" in line, line
        url = line.split()[3].split("?")[0].rstrip("/")
        base = f"{url}/api"
        port = int(url.rsplit(":", 1)[1])

        def listening():
            with socket.socket() as conn:
                return conn.connect_ex(("127.0.0.1", port)) == 0
        _wait_for(listening, 20, "the server to listen")
        request = urllib.request.Request(f"{base}/runs", method="POST",
                                         data=json.dumps({"lesson": "process-target"}).encode(),
                                         headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=10) as answer:
            run_id = json.load(answer)["id"]

        def state():
            with urllib.request.urlopen(f"{base}/runs/{run_id}", timeout=10) as answer:
                return json.load(answer)["state"] in ("finished", "failed", "stopped")
        _wait_for(state, 30, "the run to end")
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=10)
    finally:
        if server.poll() is None:
            server.kill()
            server.wait()
        server.stdout.close()
        server.stderr.close()
    assert_none_left(server.pid)
    runs, _ = Store(str(tmp_path)).load()
    assert [(r.id, r.state, len(r.processes)) for r in runs] == [(run_id, "finished", 3)]


def test_an_unreadable_history_is_kept_aside_not_lost(tmp_path):
    (tmp_path / DB_NAME).write_bytes(b"not a database, " * 512)
    store = Store(str(tmp_path))
    try:
        assert store.moved_aside and os.path.basename(store.moved_aside).startswith(DB_NAME + ".unreadable-")
        with open(store.moved_aside, "rb") as f:
            assert f.read(16) == b"not a database, "
        assert store.load() == ([], 0)
    finally:
        store.close()
    # Another schema version is not read as this one either.
    db = sqlite3.connect(tmp_path / DB_NAME)
    db.execute("PRAGMA user_version = 99")
    db.close()
    store = Store(str(tmp_path))
    store.close()
    assert store.moved_aside and len([n for n in os.listdir(tmp_path) if ".unreadable-" in n]) == 2


_WRITER = """
import sys, time
from mpdash.state import Hub, Run
from mpdash.store import Store
data, name, at = sys.argv[1], sys.argv[2], float(sys.argv[3])
time.sleep(max(0.0, at - time.time()))   # every writer opens the folder at the same moment
hub = Hub()
store = Store(data)
store.attach(hub)
run = Run(id=name, lesson="watch", title=name, params={})
hub.add_run(run)
hub.set_state(run, "running")
hub.add_output(run, 1, "out", "hello from " + name, time.time())
hub.set_state(run, "finished")
store.close()
print(store.moved_aside)
"""


def test_processes_opening_one_folder_at_once_all_keep_their_runs(tmp_path):
    """A server and several `watch` commands may share a folder: a lock is a wait, not damage."""
    at = time.time() + 1.5
    writers = [subprocess.Popen([sys.executable, "-c", _WRITER, str(tmp_path), f"r{i}", str(at)],
                                cwd=PROJECT_ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
               for i in range(8)]
    for proc in writers:
        out, err = proc.communicate(timeout=60)
        assert proc.returncode == 0 and out.strip() == b"None", err.decode()
    assert [n for n in os.listdir(tmp_path) if ".unreadable-" in n] == []
    runs, _ = Store(str(tmp_path)).load()
    assert sorted((r.id, r.state, [l["text"] for l in r.output]) for r in runs) == \
        [(f"r{i}", "finished", [f"hello from r{i}"]) for i in range(8)]


def test_a_write_that_finds_the_file_locked_is_made_later(tmp_path, caplog):
    caplog.set_level("WARNING", logger="mpdash")
    hub = Hub()
    store = Store(str(tmp_path))
    store.attach(hub)
    store._db.execute("PRAGMA busy_timeout = 50")   # give up on the lock at once
    other = sqlite3.connect(tmp_path / DB_NAME, isolation_level=None)
    try:
        run = Run(id="rlocked", lesson="watch", title="t", params={})
        hub.add_run(run)
        hub.set_state(run, "running")
        other.execute("BEGIN IMMEDIATE")              # another process holds the write lock
        for i in range(10):
            hub.add_output(run, 1, "out", f"line {i}", time.time())
        store.flush()
        failed_batches = store.batches
        # The write really met the lock: nothing of it is in the file, and the store said so.
        assert other.execute("SELECT count(*) FROM lines WHERE run = 'rlocked'").fetchone() == (0,)
        assert any("locked by another process; retrying" in r.getMessage() for r in caplog.records), \
            [r.getMessage() for r in caplog.records]
        other.execute("ROLLBACK")
        hub.set_state(run, "finished")
        assert store.flush()
        assert store.batches > failed_batches
    finally:
        other.close()
        store.close()
    runs, _ = Store(str(tmp_path)).load()
    assert [(r.id, r.state, len(r.output)) for r in runs] == [("rlocked", "finished", 10)]


_CLOSER = """
import sqlite3, sys, time
from mpdash.state import Hub, Run
from mpdash.store import DB_NAME, Store
hub = Hub()
store = Store(sys.argv[1])
store.attach(hub)
other = sqlite3.connect(sys.argv[1] + "/" + DB_NAME, isolation_level=None)
other.execute("BEGIN IMMEDIATE")          # another process holds the file through the close
run = Run(id="rclose", lesson="watch", title="t", params={})
hub.add_run(run)
hub.add_output(run, 1, "out", "hello", time.time())
started = time.monotonic()
store.close()
print(round(time.monotonic() - started, 1), store._thread.is_alive())
other.execute("ROLLBACK")
"""


def test_closing_while_another_process_holds_the_file_does_not_crash(tmp_path):
    """close() used to close the connection under the writer thread still waiting for the
    lock: the process died of SIGSEGV."""
    proc = subprocess.run([sys.executable, "-c", _CLOSER, str(tmp_path)], cwd=PROJECT_ROOT,
                          capture_output=True, timeout=60)
    assert proc.returncode == 0, (proc.returncode, proc.stderr.decode()[-2000:])
    seconds, alive = proc.stdout.decode().split()
    assert float(seconds) <= 7 and alive == "False"
    assert b"locked by another process; retrying" in proc.stderr


def test_the_real_bounds_of_a_run_in_memory_and_in_the_file(tmp_path):
    """docs/API.md: at most 20 000 lines, 20 000 events, 36 000 frames per run; the oldest
    leave memory and the file, and output_dropped counts the lines that left."""
    from mpdash.state import MAX_EVENTS, MAX_FRAMES, MAX_OUTPUT_LINES
    assert (MAX_OUTPUT_LINES, MAX_EVENTS, MAX_FRAMES) == (20_000, 20_000, 36_000)
    hub = Hub()
    store = Store(str(tmp_path))
    store.attach(hub)
    try:
        run = Run(id="rbounds", lesson="watch", title="t", params={})
        hub.add_run(run)
        hub.set_state(run, "running")
        extra = 7
        t = time.time()
        # Flushed as it goes, so the oldest rows are in the file before memory drops them.
        for i in range(MAX_OUTPUT_LINES + extra):
            hub.add_output(run, 1, "out", f"line {i}", t)
            if i in (0, MAX_OUTPUT_LINES - 1):
                assert store.flush(timeout=60)
        for i in range(MAX_EVENTS + extra):
            hub.add_event(run, {"t": t, "pid": 1, "kind": "custom", "detail": str(i)})
            if i in (0, MAX_EVENTS - 1):
                assert store.flush(timeout=60)
        for i in range(MAX_FRAMES + extra):
            hub.add_frame({"t": t + i * 1e-4, "cores": [1.0], "pid": [1], "cpu": [float(i % 100)],
                           "rss": [i], "core": [0], "status": "R", "threads": [1]},
                          {run.id: [0]}, push=False)
            if i in (0, MAX_FRAMES - 1):
                assert store.flush(timeout=60)
        hub.set_state(run, "finished")
        data = run.to_json()
        assert len(data["output"]) == MAX_OUTPUT_LINES and data["output_dropped"] == extra
        assert data["output"][0]["text"] == f"line {extra}"          # the oldest left
        assert len(data["events"]) == MAX_EVENTS and data["events"][0]["detail"] == str(extra)
        assert len(data["metrics"]) == MAX_FRAMES and data["metrics"][0]["rss"] == [extra]
        assert store.flush(timeout=60)
    finally:
        store.close()
    db = sqlite3.connect(tmp_path / DB_NAME)
    counts = {table: db.execute(f"SELECT count(*) FROM {table} WHERE run = 'rbounds'").fetchone()[0]
              for table in ("lines", "events", "frames")}
    db.close()
    assert counts == {"lines": MAX_OUTPUT_LINES, "events": MAX_EVENTS, "frames": MAX_FRAMES}
    (stored,), _ = Store(str(tmp_path)).load()
    assert stored.output_dropped == extra and stored.output[0]["text"] == f"line {extra}"


def test_a_killed_server_loses_at_most_a_quarter_second_of_a_live_run(tmp_path):
    """docs/API.md: batches every 0.25 s, so a server killed outright loses at most that plus
    the batch being written (on a loaded machine a write can take as long again)."""
    script = ("import time\n"
              "for i in range(100000):\n"
              "    print(i, flush=True)\n"
              "    time.sleep(0.01)\n")
    server = subprocess.Popen(
        [sys.executable, "-m", "mpdash", "watch", "--port", "0", "--data", str(tmp_path),
         "--", sys.executable, "-c", script],
        cwd=PROJECT_ROOT, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL)
    try:
        # The program's echo reaches us as it prints: read until it has run for a while.
        seen = None
        deadline = time.monotonic() + 30
        while seen is None or seen < 150:
            assert time.monotonic() < deadline, "the program printed too little"
            seen = int(server.stdout.readline())
        server.send_signal(signal.SIGKILL)
        killed_at = time.time()
        server.wait(timeout=10)
        _wait_for(lambda: not run_processes(server.pid), 5, "the run's processes to die")
    finally:
        if server.poll() is None:
            server.kill()
            server.wait()
        server.stdout.close()
    (run,), _ = Store(str(tmp_path)).load()
    assert run.state == "failed" and run.error == CRASHED_ERROR
    kept = [int(l["text"]) for l in run.output]
    assert kept == list(range(len(kept))) and kept[-1] >= seen - 60   # nothing missing
    # What the file lacks: the last batch period, and the batch in flight (with the echo's delay).
    assert killed_at - run.output[-1]["t"] <= 0.25 + 0.25, killed_at - run.output[-1]["t"]
