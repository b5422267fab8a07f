"""The in-run side (mpdash/inrun, protocol, harness, _boot) works on every CPython 3.10-3.14 found.

Each interpreter found on PATH (python3.10 ... python3.14) or in pyenv's versions runs
tests/programs/inrun_smoke.py: it imports every in-run module, checks that without
``MPDASH_EVENTS`` installing is a no-op, then reports to a socket this test opened; the
messages are decoded with the protocol. Absent interpreters are skipped, never 2.x or < 3.10.
"""
from __future__ import annotations

import glob
import os
import re
import shutil
import socket
import subprocess
import sys

import pytest

from mpdash import protocol

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SMOKE = os.path.join(ROOT, "tests", "programs", "inrun_smoke.py")
SUPPORTED = [(3, minor) for minor in range(10, 15)]


from mpdash.pythons import pyenv_root as _pyenv_root   # the server's own discovery rule


def interpreters() -> dict:
    """{(3, minor): path} of one interpreter per supported version."""
    found = {tuple(sys.version_info[:2]): sys.executable}
    pyenv = _pyenv_root()
    candidates = sorted(glob.glob(os.path.join(pyenv, "versions", "*", "bin", "python3.*")))
    candidates += [shutil.which(f"python{a}.{b}") for a, b in SUPPORTED]
    shims = os.path.join(pyenv, "shims") + os.sep
    for path in filter(None, candidates):
        match = re.fullmatch(r"python(\d+)\.(\d+)", os.path.basename(path))
        # pyenv's shims answer 127 for a version that is not selected: the real ones are above
        if match and os.access(path, os.X_OK) and not path.startswith(shims):
            found.setdefault((int(match[1]), int(match[2])), path)
    return {v: p for v, p in sorted(found.items()) if v in SUPPORTED}


FOUND = interpreters()


def _receive_all(server: socket.socket) -> list:
    """Every message written to ``server`` by processes that have exited."""
    messages = []
    server.settimeout(2.0)
    while True:
        try:
            conn, _ = server.accept()
        except socket.timeout:
            break
        server.settimeout(0.2)   # the first connection was there: any other is too
        with conn:
            conn.settimeout(5.0)
            lines = protocol.LineBuffer()
            while True:
                chunk = conn.recv(65536)
                if not chunk:
                    break
                messages += [protocol.decode(line) for line in lines.feed(chunk)]
    return messages


def test_some_supported_interpreter_is_found():
    assert tuple(sys.version_info[:2]) in FOUND


@pytest.mark.parametrize("version", sorted(FOUND), ids=lambda v: f"{v[0]}.{v[1]}")
def test_inrun_side_on(version, tmp_path):
    python = FOUND[version]
    path = str(tmp_path / "events.sock")
    env = {k: v for k, v in os.environ.items() if not k.startswith("MPDASH_")}
    env["PYTHONPATH"] = ROOT
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as server:
        server.bind(path)
        server.listen(16)
        done = subprocess.run([python, SMOKE, path], env=env, capture_output=True, text=True,
                              timeout=30, cwd=str(tmp_path))
        messages = _receive_all(server)
    assert None not in messages, "a line that is not a protocol message"
    errors = [m["x"] for m in messages if m["k"] == protocol.OUT and m["s"] == protocol.STDERR]
    assert done.returncode == 0, (done.stderr, errors)
    assert done.stdout == "" and done.stderr == "", "output outside the channel"
    pids = {m["pid"] for m in messages}
    assert len(pids) == 1 and set(protocol.KINDS) >= {m["k"] for m in messages}
    hello = messages[0]
    assert (hello["k"], hello["role"], hello["via"]) == (protocol.HELLO, "main", "exec")
    events = [m for m in messages if m["k"] == protocol.EVENT]
    put, get = events
    assert (put["kind"], get["kind"]) == (protocol.QUEUE_PUT, protocol.QUEUE_GET)
    assert put["channel"] == get["channel"] == "Queue-1"
    assert put["msg"] and put["msg"] == get["msg"] and put["detail"] == "{'n': 5}"
    assert 0 < get["size"] < 100
    (line,) = [m["x"] for m in messages if m["k"] == protocol.OUT]
    modules = line.split()[1:]
    assert {"channel", "lifecycle", "budget", "capture", "trace_queues"} <= set(modules)
