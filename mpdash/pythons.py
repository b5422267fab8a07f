"""The CPython interpreters a lesson can run on: found once, each named by a short id.

Found: the server's own interpreter (always first), every ``--python`` given to the server, then
``python3.X`` on ``PATH`` and in pyenv's versions folder (``pyenv root``), for the versions the
in-run side supports (3.10-3.14). Each candidate is asked for its version and its executable,
so a broken or foreign one is left out instead of failing a run later.

Why ids: a browser chooses an interpreter by its id, never by a path (nothing executes a path
that came over HTTP); the command line (``mpdash run --python PATH``) may name a path.
"""
from __future__ import annotations

import glob
import os
import re
import shutil
import subprocess
import sys
import threading

SUPPORTED = [(3, minor) for minor in range(10, 15)]
PROBE = "import sys; print(sys.version.split()[0]); print(sys.executable)"
PROBE_TIMEOUT = 10.0   # s per candidate: a cold interpreter on a loaded machine


def pyenv_root() -> str:
    if shutil.which("pyenv"):
        try:
            out = subprocess.run(["pyenv", "root"], capture_output=True, text=True, timeout=5)
            if out.returncode == 0 and out.stdout.strip():
                return out.stdout.strip()
        except (OSError, subprocess.TimeoutExpired):
            pass
    return os.environ.get("PYENV_ROOT") or os.path.expanduser("~/.pyenv")


def candidates() -> list[str]:
    """Paths named python3.X on PATH and in pyenv's versions (its shims excluded: they answer
    127 for a version that is not selected; the real binaries are among the versions)."""
    root = pyenv_root()
    found = sorted(glob.glob(os.path.join(root, "versions", "*", "bin", "python3.*")))
    for folder in os.environ.get("PATH", os.defpath).split(os.pathsep):
        found += [os.path.join(folder or ".", f"python{a}.{b}") for a, b in SUPPORTED]
    shims = os.path.join(root, "shims") + os.sep
    return [p for p in found if re.fullmatch(r"python3\.\d+", os.path.basename(p))
            and not p.startswith(shims) and os.path.isfile(p) and os.access(p, os.X_OK)]


_probed: dict = {}            # path -> probe(path), for the life of this server process
_probed_lock = threading.Lock()


def probe_once(path: str) -> dict | None:
    """``probe(path)``, asked once per server process: every Dashboard (one per test, too)
    lists the same interpreters, and each probe starts an interpreter."""
    with _probed_lock:
        if path not in _probed:
            _probed[path] = probe(path)
        return _probed[path]


def probe(path: str) -> dict | None:
    """``{version, executable}`` of the interpreter at ``path``; None if it is not a supported
    CPython that answers."""
    try:
        out = subprocess.run([path, "-I", "-S", "-c", PROBE], capture_output=True, text=True,
                             timeout=PROBE_TIMEOUT, stdin=subprocess.DEVNULL)
    except (OSError, subprocess.SubprocessError):
        return None
    lines = out.stdout.split()
    if out.returncode != 0 or len(lines) != 2:
        return None
    match = re.match(r"(\d+)\.(\d+)", lines[0])
    if not match or (int(match[1]), int(match[2])) not in SUPPORTED:
        return None
    return {"version": lines[0], "executable": path}


class Pythons:
    """The interpreters of one server, discovered on first use (it takes a few probes)."""

    def __init__(self, extra: list[str] | tuple = ()):
        self._extra = [os.path.abspath(p) for p in extra]
        self._lock = threading.Lock()
        self._found: list[dict] | None = None

    def list(self) -> list[dict]:
        """``[{id, version, executable}]``, the server's own first."""
        with self._lock:
            if self._found is None:
                self._found = self._discover()
            return [dict(p) for p in self._found]

    def executable(self, python_id: str) -> str | None:
        """The path of the interpreter ``python_id`` names, or None for an unknown id."""
        return next((p["executable"] for p in self.list() if p["id"] == python_id), None)

    def _discover(self) -> list[dict]:
        found, seen = [], set()
        own = {"version": sys.version.split()[0], "executable": sys.executable}
        for info in [own] + [probe_once(p) for p in self._extra + candidates()]:
            if info is None:
                continue
            # The same file by another path (/bin -> /usr/bin) is one interpreter; a venv's
            # python, a link to its base's, is another: it has its own packages.
            path = info["executable"]
            key = (os.path.realpath(os.path.dirname(path)), os.path.basename(path))
            if key in seen:
                continue
            seen.add(key)
            ids = {p["id"] for p in found}
            base = "server" if not found else info["version"]
            python_id, n = base, 2
            while python_id in ids:
                python_id, n = f"{base}-{n}", n + 1
            found.append({"id": python_id, **info})
        return found
