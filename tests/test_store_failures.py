"""When the history cannot be written (issue 17): a filesystem that fills, a folder that becomes
read-only, a folder removed while serving. Each: the server stays up, runs work live,
``history.ok`` is false with the reason (API, the socket's ``hello`` and ``history`` message),
at most one log line per change, and every run is written once the folder works again.

Filling and read-only need a filesystem of our own, so root (``mount -t tmpfs``); as another
user the read-only case swaps in a folder without write permission instead, and the full disk
is skipped with the reason."""
from __future__ import annotations

import logging
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

import pytest
import requests

from mpdash.dashboard import Dashboard
from mpdash.store import Store
from tests.leaks import assert_none_left
from tests.conftest import APP, wait_until

ROOT = os.geteuid() == 0
LINES = 1000            # per process: a process-target run of 2 processes prints 2000 lines
NEEDS_ROOT = "needs root: a small filesystem of its own is made with mount -t tmpfs"


def _mount(*args) -> None:
    subprocess.run(["mount", *args], check=True, capture_output=True, timeout=30)


@pytest.fixture
def small_tmpfs():
    """A 300 KiB tmpfs (the issue's), grown with ``grow()``; unmounted at the end."""
    if not ROOT:
        pytest.skip(NEEDS_ROOT)
    where = tempfile.mkdtemp(prefix="mpdash-tmpfs-")
    try:
        _mount("-t", "tmpfs", "-o", "size=300k", "tmpfs", where)
    except (OSError, subprocess.CalledProcessError) as exc:
        os.rmdir(where)
        pytest.skip(f"cannot mount a tmpfs here: {exc}")
    yield where
    subprocess.run(["umount", "-l", where], capture_output=True, timeout=30)
    os.rmdir(where)


def grow(where: str) -> None:
    _mount("-o", "remount,size=16m", where)


class Serving:
    """A Dashboard on ``folder`` with its web app, the store's log, and every ``history``
    message the Hub published (web/sockets.py hands each one to the viewers; a viewer
    connected all along would queue ~25 000 output packets, which the test client sifts in
    quadratic time, so ``viewer()`` connects one for a moment instead)."""

    def __init__(self, folder: str, caplog):
        from mpdash.web import create_app
        caplog.set_level(logging.WARNING, logger="mpdash.store")
        self.caplog = caplog
        self.dash = Dashboard(data_dir=folder)
        self.app = create_app(self.dash, {"TESTING": True})
        self.http = self.app.test_client()
        self.published: list[dict] = []
        self.dash.hub.subscribe(lambda name, m: name == "history" and self.published.append(m))
        self.runs: list[str] = []

    def history(self) -> dict:
        return self.http.get("/api/system").get_json()["history"]

    def run(self) -> str:
        """One process-target run, start to end, checked live from the API."""
        r = self.http.post("/api/runs", json={"lesson": "process-target",
                                              "params": {"count": LINES}})
        assert r.status_code == 201, r.get_json()
        run_id = r.get_json()["id"]
        self.dash.engine.wait(run_id, timeout=60)
        run = self.http.get(f"/api/runs/{run_id}").get_json()
        assert run["state"] == "finished" and len(run["output"]) == 2 * LINES
        self.runs.append(run_id)
        return run_id

    def wait_history(self, ok: bool, timeout: float = 15.0) -> dict:
        assert wait_until(lambda: self.history()["ok"] is ok, timeout=timeout), self.history()
        return self.history()

    def log_lines(self) -> list[str]:
        return [r.getMessage() for r in self.caplog.records if r.name == "mpdash.store"]

    def viewer(self):
        return self.app.extensions["socketio"].test_client(self.app)

    def hello_history(self) -> dict:
        late = self.viewer()
        hello = next(m["args"][0] for m in late.get_received() if m["name"] == "hello")
        late.disconnect()
        return hello["system"]["history"]

    def close(self) -> None:
        self.dash.close()
        assert_none_left(self.dash)


def stored(folder: str) -> dict[str, int]:
    """Run id -> output lines, as a restarted server would load them."""
    store = Store(folder)
    try:
        runs, _ = store.load()
    finally:
        store.close()
    return {run.id: len(run.output) for run in runs}


def check_failing(serving: Serving, reason: str, folder: str) -> None:
    """The run goes on live while nothing is saved, and everyone is told, once."""
    serving.run()
    serving.dash.store.flush()
    history = serving.wait_history(False)
    assert reason in history["error"] and history["folder"] == os.path.abspath(folder)
    assert history["pending_runs"] >= 1
    assert serving.hello_history()["ok"] is False
    told = serving.published
    assert told and told[-1]["ok"] is False and reason in told[-1]["error"]
    assert all(m["seq"] > 0 for m in told)
    assert len(serving.log_lines()) == 1, serving.log_lines()
    assert reason in serving.log_lines()[0] and "Traceback" not in serving.caplog.text


def check_recovered(serving: Serving, folder: str, viewer) -> None:
    """``viewer`` connected before the folder came back: it is told, by a ``history`` message."""
    history = serving.wait_history(True)
    assert history == {"ok": True, "error": None, "pending_runs": 0, "dropped_runs": 0,
                       "folder": os.path.abspath(folder)}
    told = [m["args"][0] for m in viewer.get_received() if m["name"] == "history"]
    viewer.disconnect()
    assert told and told[-1]["ok"] is True and serving.published[-1] == told[-1]
    assert len(serving.log_lines()) == 2 and "written again" in serving.log_lines()[1]
    serving.run()                    # and it goes on being written
    serving.close()
    assert stored(folder) == {run_id: 2 * LINES for run_id in serving.runs}


# ------------------------------------------------------------------ a filesystem that fills

def test_a_filesystem_that_fills_then_gets_room(small_tmpfs, caplog):
    serving = Serving(small_tmpfs, caplog)
    try:
        for _ in range(11):          # 300 KiB hold two or three of these runs
            serving.run()
        check_failing(serving, "the disk is full", small_tmpfs)
        assert serving.history()["pending_runs"] >= 8
        assert len(serving.log_lines()) == 1   # not one line per batch, however many batches
        viewer = serving.viewer()
        grow(small_tmpfs)
        check_recovered(serving, small_tmpfs, viewer)
    finally:
        serving.dash.close()


def test_stopped_while_the_disk_is_full_says_how_many_runs_are_lost(small_tmpfs):
    """The server itself (python app.py): Ctrl-C while runs are unwritten exits normally and
    prints how many and why; the runs written before the disk filled are kept."""
    proc = subprocess.Popen([sys.executable, APP, "--port", "0", "--data", small_tmpfs],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        url = proc.stdout.readline().split()[3].rstrip("/")
        assert wait_until(lambda: _answers(url), timeout=15)
        total = 8
        for _ in range(total):
            r = requests.post(f"{url}/api/runs", json={"lesson": "process-target",
                                                       "params": {"count": LINES}}, timeout=10)
            run_id = r.json()["id"]
            assert wait_until(lambda: requests.get(f"{url}/api/runs/{run_id}", timeout=10)
                            .json()["state"] == "finished", timeout=60)
        assert wait_until(lambda: requests.get(f"{url}/api/system", timeout=10)
                        .json()["history"]["ok"] is False, timeout=15)
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)
    assert proc.returncode == 0, err[-2000:]
    lost_line = [line for line in err.splitlines() if "not saved (or not completely) in" in line]
    assert len(lost_line) == 1 and "the disk is full" in lost_line[0], err[-2000:]
    lost = int(lost_line[0].split("mpdash.store: ")[1].split()[0])
    assert "Traceback" not in err and err.count("cannot be written") == 1, err[-2000:]
    # A run the disk filled in the middle of is kept as far as it was written, and counted; so
    # is one whose every line is on disk but not a change that came after (a process's exit).
    grow(small_tmpfs)   # reading back marks a run cut short as failed: that is a write
    complete = [n for n in stored(small_tmpfs).values() if n == 2 * LINES]
    assert total - len(complete) <= lost <= total


def _answers(url: str) -> bool:
    try:
        return requests.get(f"{url}/api/system", timeout=2).status_code == 200
    except requests.RequestException:
        return False


# ------------------------------------------------------------------ a folder that becomes read-only

def test_a_folder_that_becomes_read_only_then_writable(tmp_path, caplog):
    """Root: a read-only tmpfs mounted over the folder while serving (a remount of the folder's
    own filesystem is refused while SQLite holds files open, and chmod does not stop root).
    Others: the folder swapped for one without write permission. Then back."""
    folder = str(tmp_path / "data")
    serving = Serving(folder, caplog)
    try:
        serving.run()
        serving.dash.store.flush()
        if ROOT:
            _mount("-t", "tmpfs", "-o", "ro", "tmpfs", folder)
            reason = "read-only file system"
        else:
            os.rename(folder, folder + ".away")
            os.mkdir(folder, 0o555)
            reason = "not writable"
        try:
            check_failing(serving, reason, folder)
            viewer = serving.viewer()
        finally:
            if ROOT:
                subprocess.run(["umount", folder], check=True, timeout=30)
            else:
                os.rmdir(folder)
                os.rename(folder + ".away", folder)
        check_recovered(serving, folder, viewer)
    finally:
        serving.dash.close()


# ------------------------------------------------------------------ a folder removed while serving

def test_a_folder_removed_while_serving_then_made_again(tmp_path, caplog):
    """SQLite writes on into a removed file without a word: the store notices by itself. The
    folder made again holds a new file, which gets every run, the ones written before too."""
    folder = str(tmp_path / "data")
    serving = Serving(folder, caplog)
    try:
        serving.run()
        serving.dash.store.flush()
        shutil.rmtree(folder)
        check_failing(serving, "the folder was removed", folder)
        assert not os.path.exists(folder)   # not made again behind the user's back
        viewer = serving.viewer()
        os.mkdir(folder)
        check_recovered(serving, folder, viewer)
    finally:
        serving.dash.close()


# ------------------------------------------------------------------ bounded, and a clean error path

def test_pending_runs_are_bounded_oldest_given_up_first(tmp_path, caplog):
    folder = str(tmp_path / "data")
    os.mkdir(folder)
    dash = Dashboard(data_dir=folder)
    dash.store.max_pending_runs = 2
    caplog.set_level(logging.WARNING, logger="mpdash.store")
    try:
        shutil.rmtree(folder)
        ids = []
        for _ in range(4):
            run = dash.engine.start_lesson("process-target", {})
            dash.engine.wait(run.id, timeout=60)
            ids.append(run.id)
        dash.store.flush()
        assert wait_until(lambda: dash.history()["dropped_runs"] == 2, timeout=10), dash.history()
        assert dash.history()["pending_runs"] == 2 and dash.history()["ok"] is False
        assert set(dash.hub.runs) == set(ids)          # still all shown live, in memory
        os.mkdir(folder)
        assert wait_until(lambda: dash.history()["ok"], timeout=10)
    finally:
        dash.close()
    assert set(stored(folder)) == set(ids[2:])          # the two newest were kept
    assert sum("could not be kept" in r.getMessage() for r in caplog.records) == 1


def test_a_failed_write_rolls_back_without_a_second_error(tmp_path):
    """SQLite has already rolled back after "database or disk is full": a second ROLLBACK
    raised "cannot rollback - no transaction is active" from the error path."""
    import sqlite3
    from mpdash.historyfile import _rollback
    db = sqlite3.connect(":memory:", isolation_level=None)
    _rollback(db)                    # no transaction: nothing raised
    db.execute("BEGIN")
    _rollback(db)
    assert not db.in_transaction
    db.close()
    _rollback(db)                    # even a closed connection: nothing raised
