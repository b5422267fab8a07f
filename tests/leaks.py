"""Finding processes a test left behind.

Every process of a run carries its engine's marker (``MPDASH_ENGINE=<token>``, one token per
Dashboard) and its server's pid (``MPDASH_SERVER_PID``) in its environment. A test keys its leak
check on the Dashboard it made (every Dashboard of a pytest session shares the pytest pid, so a
pid-keyed check would blame one test's leak on another's teardown), or, for a server started as
its own process, on that process's pid. /proc is read through mpdash.procfs, whose reads are the
check (a process can end between a check and an open; a read of a gone one is None).
"""
from __future__ import annotations

import os
import signal
import time

from mpdash import procfs, protocol


def proc_state(pid: int) -> str | None:
    """The process's state letter (R, S, Z...), or None once it is gone."""
    stat = procfs.read_stat(pid)
    return None if stat is None else stat.state


def alive(pid: int) -> bool:
    """Running or sleeping: neither gone nor a zombie waiting to be reaped."""
    return proc_state(pid) not in (None, "Z", "X")


def marked_processes(entry: str) -> list[int]:
    """Live (non-zombie) processes whose environment holds ``entry`` (``NAME=value``)."""
    needle = entry.encode()
    found = []
    for name in filter(str.isdigit, os.listdir("/proc")):
        env = procfs.environ(int(name))
        if env and needle in env and alive(int(name)):
            found.append(int(name))
    return found


def run_processes(owner) -> list[int]:
    """Live processes of the runs of ``owner``: a Dashboard (its engine's marker) or the pid
    of a server running as its own process."""
    if isinstance(owner, int):
        return marked_processes(f"{protocol.ENV_SERVER_PID}={owner}")
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
        stat = procfs.read_stat(int(name))
        if stat is not None and stat.state == "Z" and stat.ppid == parent \
                and group in (None, stat.pgid):
            found.append(int(name))
    return found
