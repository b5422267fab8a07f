"""Shared fixtures and the few helpers every test module uses (one of each, here).

Fixtures: a Dashboard, the Flask app, an HTTP client, a live server on a free port, and
``server_factory`` (``python app.py`` as its own process). Every fixture that can start
processes checks, when the test ends, that the processes *it* started are gone (keyed on its
own Dashboard's marker or its own server's pid, never on the pytest pid they all share).
"""
from __future__ import annotations

import csv
import io
import json
import math
import os
import subprocess
import sys
import tempfile
import threading
import time

import pytest

from mpdash.dashboard import Dashboard
from mpdash.state import Limits
from tests.leaks import assert_none_left, run_processes

PROJECT_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


# ------------------------------------------------------------------ a hang is a failure

HANG_GRACE = 60.0   # s past a test's own pytest-timeout: that one fires first when it can


def _terminal(config):
    """The session's real stderr: pytest captures fd 2 during a test, and a dump written into
    the capture of a process that then exits is lost."""
    capman = config.pluginmanager.getplugin("capturemanager")
    try:
        fd = capman._global_capturing.err.targetfd_save   # pytest's own dup of fd 2
    except AttributeError:
        fd = 2
    return open(fd, "w", closefd=False)


def _session_timeout(config) -> float:
    """pytest-timeout's own: --timeout, else PYTEST_TIMEOUT, else the ini; 0 without it."""
    for read in (lambda: config.getoption("timeout", None), lambda: os.environ["PYTEST_TIMEOUT"],
                 lambda: config.getini("timeout")):
        try:
            value = read()
        except (KeyError, ValueError):
            continue
        if value not in (None, ""):
            return float(value)
    return 0.0


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item, nextitem):
    """The backstop behind pytest-timeout. Its SIGALRM fires once, in the main thread: a
    teardown that deadlocks after it (a lock another thread never releases) hung make test for
    good. Past the test's timeout and a grace this dumps every thread's stack and exits."""
    import faulthandler
    marker = item.get_closest_marker("timeout")
    limit = float(marker.args[0]) if marker and marker.args else _session_timeout(item.config)
    if sys.gettrace() is not None or item.config.getoption("usepdb", False):
        limit = 0   # someone is debugging: pytest-timeout stands down too
    done = threading.Event()

    def backstop():
        if done.wait(limit + HANG_GRACE):
            return
        out = _terminal(item.config)
        out.write(f"\n\n{item.nodeid} still running {limit + HANG_GRACE:.0f} s after it "
                  f"began: every thread's stack, then exit 3\n")
        out.flush()
        faulthandler.dump_traceback(out, all_threads=True)
        out.flush()
        os._exit(3)

    if limit > 0:
        threading.Thread(target=backstop, name="hang-backstop", daemon=True).start()
    try:
        yield
    finally:
        done.set()


# ------------------------------------------------------------------ waiting

def wait_until(predicate, timeout: float = 15.0, step: float = 0.02):
    """Poll ``predicate`` until it returns something truthy or ``timeout`` s pass; returns its
    last value (so ``assert wait_until(...)`` fails with the state that was still wrong)."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value or time.monotonic() >= deadline:
            return value
        time.sleep(step)


def finish(proc: subprocess.Popen, timeout: float):
    """``proc.communicate(timeout)``, and the process never left running on the way out (a
    timeout or a failed assertion kills it first): its (stdout, stderr)."""
    try:
        return proc.communicate(timeout=timeout)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def run_lesson(dashboard, lesson_id, params=None, timeout=60) -> dict:
    """Run a lesson to its end through the engine; its Run JSON."""
    run = dashboard.engine.start_lesson(lesson_id, params or {})
    dashboard.engine.wait(run.id, timeout=timeout)
    data = dashboard.hub.snapshot(run)
    if data["state"] == "finished":   # whatever its parameters, a finished run has one verdict
        assert [f["headline"] for f in data["findings"]].count(True) == 1, data["findings"]
    return data


# ------------------------------------------------------------------ engine and web fixtures

@pytest.fixture
def dashboard():
    dash = Dashboard(Limits())
    yield dash
    dash.close()
    assert_none_left(dash)


@pytest.fixture
def app(dashboard):
    from mpdash.web import create_app
    return create_app(dashboard, {"TESTING": True})


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def live_server(app):
    """The app served by a threaded Werkzeug server on a free port; yields its base URL."""
    from werkzeug.serving import make_server
    server = make_server("127.0.0.1", 0, app, threaded=True)   # bound here: no port race
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    thread.join(timeout=5)


# ------------------------------------------------------------------ a server of its own

APP = os.path.join(PROJECT_ROOT, "app.py")


def _accepts(host, port):
    import socket
    try:
        socket.create_connection((host, port), timeout=1).close()
        return True
    except OSError:
        return False


def post_run(url: str, lesson: str, params: dict) -> str:
    """Start a lesson on the server at ``url`` through POST /api/runs; its run id."""
    import requests
    r = requests.post(f"{url}/api/runs", json={"lesson": lesson, "params": params}, timeout=10)
    assert r.status_code == 201, r.text
    return r.json()["id"]


class Server:
    """``python app.py`` as a child process on a free loopback port (``--port 0``: the server
    binds and prints the port it got, so no other process can take it in between)."""

    def __init__(self, *args, env=None):
        self.data = tempfile.TemporaryDirectory(prefix="mpdash-test-data-")
        self.proc = subprocess.Popen([sys.executable, APP, "--port", "0", "--data",
                                      self.data.name, *args],
                                     stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                                     text=True, env={**os.environ, **(env or {})})
        line = self.proc.stdout.readline()   # the URL, printed with flush=True
        assert "serving on http://" in line, line
        self.first_line = line
        # In token mode a viewer link follows at once (flushed with the URL); else nothing.
        self.second_line = self.proc.stdout.readline() if "?token=" in line else ""
        self.url = line.split()[3].split("?")[0].rstrip("/")
        self.pid = self.proc.pid
        threading.Thread(target=self.proc.stdout.read, daemon=True).start()
        host, port = self.url.split("//")[1].rsplit(":", 1)
        assert wait_until(lambda: _accepts(host, int(port)), timeout=15), "server never listened"

    def start(self, lesson, params):
        return post_run(self.url, lesson, params)

    def live_count(self, run_id):
        import requests
        run = requests.get(f"{self.url}/api/runs/{run_id}", timeout=10).json()
        return sum(p["ended_at"] is None for p in run["processes"])

    def close(self) -> list[int]:
        """End the server the way a user does (SIGTERM) if the test has not; returns the pids
        of its runs still alive 3 s later (killed here, reported to the test)."""
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        wait_until(lambda: not run_processes(self.pid), timeout=3)
        left = run_processes(self.pid)
        for pid in left:
            try:
                os.kill(pid, 9)
            except ProcessLookupError:
                pass
        self.data.cleanup()
        return left


@pytest.fixture
def server_factory():
    made = []

    def make(*args, **kw):
        made.append(Server(*args, **kw))
        return made[-1]

    yield make
    left = {server.pid: server.close() for server in made}
    assert not any(left.values()), f"a server's run processes outlived it: {left}"


# ------------------------------------------------------------------ export checks

PHASES = {"X", "B", "E", "i", "I", "C", "M", "s", "t", "f"}


def check_trace(trace: dict, run: dict) -> list[dict]:
    """Structural checks a trace viewer relies on (docs/API.md, trace.json); returns the events."""
    assert set(trace) >= {"traceEvents"}
    assert trace.get("displayTimeUnit") == "ms"
    events = trace["traceEvents"]
    assert events, "an empty trace"
    json.dumps(trace)   # plain JSON, nothing a viewer cannot parse
    for e in events:
        assert {"ph", "ts", "pid", "tid"} <= set(e), e
        assert e["ph"] in PHASES, e
        assert isinstance(e["ts"], (int, float)) and math.isfinite(e["ts"]) and e["ts"] >= 0, e
        assert isinstance(e["pid"], int) and isinstance(e["tid"], int), e
        if e["ph"] == "X":
            assert isinstance(e["dur"], (int, float)) and e["dur"] >= 0, e
            assert isinstance(e["name"], str) and e["name"], e
        if e["ph"] == "C":
            assert e["args"] and all(isinstance(v, (int, float)) and not isinstance(v, bool)
                                     for v in e["args"].values()), e
        if e["ph"] == "i":
            assert e.get("s", "t") in ("t", "p", "g"), e
    named = {e["pid"] for e in events if e["ph"] == "M" and e["name"] == "process_name"}
    assert {e["pid"] for e in events} <= named, "a pid without process_name metadata"
    # Every process of the run: a name, and its lifetime as a span carrying how it ended.
    spans = {e["pid"]: e for e in events if e["ph"] == "X" and e.get("cat") == "process"}
    for proc in run["processes"]:
        assert proc["pid"] in named
        span = spans[proc["pid"]]
        assert span["args"]["exitcode"] == proc["exitcode"]
        assert span["args"]["end"] == proc["end"]
        assert span["args"]["role"] == proc["role"]
    # Slices of one thread nest (a viewer drops or mis-draws partial overlaps).
    tracks: dict = {}
    for e in events:
        if e["ph"] == "X":
            tracks.setdefault((e["pid"], e["tid"]), []).append((e["ts"], e["ts"] + e["dur"]))
    for track, slices in tracks.items():
        stack: list[float] = []
        for begin, end in sorted(slices, key=lambda s: (s[0], -s[1])):
            while stack and stack[-1] <= begin:
                stack.pop()
            assert not stack or end <= stack[-1], f"overlapping slices on {track}"
            stack.append(end)
    # Flows: one s and one f per id, the f bound to its enclosing slice (bp "e") and not
    # before its s, each end on an instant of the same process and time (the arrow's anchors).
    flows: dict = {}
    for e in events:
        if e["ph"] in "sf":
            flows.setdefault(e["id"], {}).setdefault(e["ph"], []).append(e)
    instants = {(e["pid"], e["tid"], e["ts"]) for e in events if e["ph"] == "i"}
    for flow_id, ends in flows.items():
        assert set(ends) == {"s", "f"} and len(ends["s"]) == len(ends["f"]) == 1, (flow_id, ends)
        (s,), (f,) = ends["s"], ends["f"]
        assert f.get("bp") == "e" and f["ts"] >= s["ts"] and s["name"] == f["name"], (s, f)
        assert (s["pid"], s["tid"], s["ts"]) in instants, s
    return events


def check_csv(text: str, run: dict) -> list[dict]:
    rows = list(csv.DictReader(io.StringIO(text)))
    assert text.splitlines()[0] == "t,pid,cpu_percent,rss_bytes,core,status,threads"
    assert len(rows) == sum(len(f["pid"]) for f in run["metrics"])
    pids = {p["pid"] for p in run["processes"]}
    for row in rows:
        assert int(row["pid"]) in pids
        assert float(row["t"]) >= run["started_at"] - 1
        assert float(row["cpu_percent"]) >= 0
        # 0 happens: a process caught exiting (its memory already released) or a zombie.
        assert int(row["rss_bytes"]) >= 0 and int(row["rss_bytes"]) % 1024 == 0
        assert int(row["core"]) >= 0
        assert len(row["status"]) == 1
        assert int(row["threads"]) >= 1
    assert max(int(r["rss_bytes"]) for r in rows) > 1 << 20   # a Python process is > 1 MiB
    return rows
