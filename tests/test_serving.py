"""The one serving path (mpdash/serving.py) as each entry point reaches it: ``python app.py``,
``mpdash serve`` and ``mpdash watch`` take the same options, refuse the same bad values with
status 2, name ``--port`` for a busy port, and stop on Ctrl-C even when started in the
background by a script (which hands them SIGINT ignored)."""
from __future__ import annotations

import json
import os
import queue
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request

import pytest

from tests.leaks import assert_none_left

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SLEEPER = [sys.executable, "-c", "import time; print('ready', flush=True); time.sleep(60)"]
ENTRIES = {
    "app.py": lambda *opts: [sys.executable, "app.py", *opts],
    "serve": lambda *opts: [sys.executable, "-m", "mpdash", "serve", *opts],
    "watch": lambda *opts: [sys.executable, "-m", "mpdash", "watch", *opts, "--", *SLEEPER],
}
# What a shell script does to a job it starts with `&`: SIGINT ignored, inherited across exec.
IGNORING_SIGINT = ["sh", "-c", 'trap "" INT; exec "$@"', "sh"]


def _start(argv, tmp_path) -> subprocess.Popen:
    return subprocess.Popen(argv, cwd=ROOT, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "MPDASH_TOKEN": ""})


class _Lines:
    """A stream's lines, read by a thread: a wait for one is bounded in time (a select on the
    pipe would miss lines already read into the stream's buffer)."""

    def __init__(self, stream):
        self._queue: queue.SimpleQueue = queue.SimpleQueue()
        threading.Thread(target=self._read, args=(stream,), daemon=True).start()

    def _read(self, stream):
        for line in stream:
            self._queue.put(line)
        self._queue.put(None)

    def wait(self, needle: str, timeout: float = 30) -> str:
        deadline = time.monotonic() + timeout
        while True:
            try:
                line = self._queue.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                raise AssertionError(f"never saw {needle!r} within {timeout} s") from None
            assert line is not None, f"the stream ended before {needle!r}"
            if needle in line:
                return line


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.kill()
        proc.wait()
    assert_none_left(proc.pid)


def _get(url: str, token: str | None = None) -> int:
    """The status of a GET (no retry: the port is listening before the link is printed)."""
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    try:
        with urllib.request.urlopen(urllib.request.Request(url, headers=headers),
                                    timeout=10) as answer:
            return answer.status
    except urllib.error.HTTPError as exc:
        return exc.code


@pytest.mark.parametrize("entry", ENTRIES)
@pytest.mark.parametrize("option", [("--hz", "0.5"), ("--hz", "51"), ("--hz", "fast"),
                                    ("--port", "-1"), ("--port", "65536"),
                                    ("--allow-host", "evil.example:80"),        # issue 15
                                    ("--allow-host", "http://evil.example")])
def test_a_bad_serving_option_is_refused_alike_by_every_entry(entry, option, tmp_path):
    marker = tmp_path / "ran"
    argv = ENTRIES[entry]("--data", str(tmp_path / "data"), *option)
    if entry == "watch":   # the program would leave a mark if it ever started
        argv[-3:] = [sys.executable, "-c", f"open({str(marker)!r}, 'w')"]
    done = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and f"argument {option[0]}" in done.stderr, done.stderr
    assert done.stdout == "" and not marker.exists() and not (tmp_path / "data").exists()


@pytest.mark.parametrize("entry", ENTRIES)
def test_a_busy_port_is_named_with_status_2(entry, tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = subprocess.run(ENTRIES[entry]("--port", str(port), "--data", str(tmp_path)),
                              cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert done.returncode == 2, done.stderr
    assert f"port {port} on 127.0.0.1 is already in use" in done.stderr and "--port" in done.stderr
    assert "Werkzeug" not in done.stderr and "Either identify" not in done.stderr


@pytest.mark.parametrize("entry", ["app.py", "serve"])
def test_started_with_sigint_ignored_ctrl_c_still_stops_the_server(entry, tmp_path):
    proc = _start(IGNORING_SIGINT + ENTRIES[entry]("--port", "0", "--data", str(tmp_path)),
                  tmp_path)
    out = _Lines(proc.stdout)
    try:
        line = out.wait("mpdash serving on http://")
        assert _get(line.split()[3] + "api/system") == 200
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=15) == 0
    finally:
        _stop(proc)


def test_watch_started_with_sigint_ignored_passes_ctrl_c_on_then_stops(tmp_path):
    proc = _start(IGNORING_SIGINT + ENTRIES["watch"]("--port", "0", "--data", str(tmp_path)),
                  tmp_path)
    out, err = _Lines(proc.stdout), _Lines(proc.stderr)
    try:
        err.wait("Ctrl-C to stop")
        out.wait("ready")
        proc.send_signal(signal.SIGINT)   # the program gets it too: it was started after the fix
        assert "ended: failed, exit status 130" in err.wait("ended:")
        err.wait("still serving")
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=15) == 130
    finally:
        _stop(proc)


def test_watch_off_the_open_hosts_wants_a_token_and_sigterm_ends_it(tmp_path):
    proc = _start(ENTRIES["watch"]("--host", "127.0.0.2", "--port", "0", "--data", str(tmp_path)),
                  tmp_path)
    out, err = _Lines(proc.stdout), _Lines(proc.stderr)
    try:
        banner = err.wait("Ctrl-C to stop")
        link = banner.split(" — ")[1].split()[0]
        assert link.startswith("http://127.0.0.2:") and "/?token=" in link, banner
        base, token = link.split("/?token=")
        viewer = err.wait("viewer link (read-only): ").split("?token=")[1].strip()
        out.wait("ready")
        assert _get(f"{base}/api/system") == 401
        assert _get(f"{base}/api/system", token) == 200
        request = urllib.request.Request(f"{base}/api/runs", method="POST",
                                         data=json.dumps({"lesson": "pool-map"}).encode(),
                                         headers={"Authorization": f"Bearer {viewer}",
                                                  "Content-Type": "application/json"})
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(request, timeout=10)
        assert refused.value.code == 403
        proc.send_signal(signal.SIGTERM)   # stops the run and exits
        assert proc.wait(timeout=15) == 128 + signal.SIGTERM
    finally:
        _stop(proc)


def test_started_under_nohup_a_hangup_does_not_end_the_server(tmp_path):
    """nohup sets SIGHUP to ignored on purpose (the terminal may close); SIGTERM still ends it."""
    proc = _start(["nohup"] + ENTRIES["serve"]("--port", "0", "--data", str(tmp_path)), tmp_path)
    out = _Lines(proc.stdout)
    try:
        line = out.wait("mpdash serving on http://")
        proc.send_signal(signal.SIGHUP)
        assert _get(line.split()[3] + "api/system") == 200   # answered after the hangup
        assert proc.poll() is None
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=15) == 128 + signal.SIGTERM
    finally:
        _stop(proc)
