"""Finding processes a test left behind.

Every process of a run carries its engine's marker (``MPDASH_ENGINE=<token>``, one token per
Dashboard) and its server's pid (``MPDASH_SERVER_PID``) in its environment. A test keys its leak
check on the Dashboard it made (every Dashboard of a pytest session shares the pytest pid, so a
pid-keyed check would blame one test's leak on another's teardown), or, for a server started as
its own process, on that process's pid.
"""
from __future__ import annotations

import os
import signal
import time


def _read(path: str) -> bytes | None:
    # Never check-then-open: a process can end between the two; the open is the check.
    try:
        with open(path, "rb") as f:
            return f.read()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    except OSError:
        return None


def proc_state(pid: int) -> str | None:
    """The process's state letter (R, S, Z...), or None once it is gone."""
    stat = _read(f"/proc/{pid}/stat")
    if not stat:
        return None
    return stat[stat.rfind(b")") + 2:][:1].decode()


def alive(pid: int) -> bool:
    """Running or sleeping: neither gone nor a zombie waiting to be reaped."""
    return proc_state(pid) not in (None, "Z", "X")


def marked_processes(entry: str) -> list[int]:
    """Live (non-zombie) processes whose environment holds ``entry`` (``NAME=value``)."""
    needle = entry.encode()
    found = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        env = _read(f"/proc/{name}/environ")
        if env and needle in env.split(b"\0") and alive(int(name)):
            found.append(int(name))
    return found


def run_processes(owner) -> list[int]:
    """Live processes of the runs of ``owner``: a Dashboard (its engine's marker) or the pid
    of a server running as its own process."""
    if isinstance(owner, int):
        return marked_processes(f"MPDASH_SERVER_PID={owner}")
    return marked_processes(owner.engine.marker)


def assert_none_left(owner, within: float = 2.0) -> None:
    """Wait up to ``within`` s for every process of ``owner``'s runs to be gone; if some are
    not, kill them (never leave a failed test's processes around) and fail."""
    deadline = time.monotonic() + within
    left = run_processes(owner)
    while left and time.monotonic() < deadline:
        time.sleep(0.02)
        left = run_processes(owner)
    for pid in left:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    assert not left, f"processes outlived their run: {left}"


def zombie_children(parent: int, group: int | None = None) -> list[int]:
    """Zombies whose parent is ``parent`` (in process group ``group``, if given)."""
    found = []
    for name in filter(str.isdigit, os.listdir("/proc")):
        stat = _read(f"/proc/{name}/stat")
        if not stat:
            continue
        fields = stat.decode(errors="replace").rsplit(")", 1)[1].split()
        if fields[0] == "Z" and int(fields[1]) == parent and group in (None, int(fields[2])):
            found.append(int(name))
    return found
