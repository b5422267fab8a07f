"""Finding processes a test left behind: every process of a run carries the server's pid in
its environment (MPDASH_SERVER_PID), so a scan of /proc finds exactly the ones a given server
started, even while other test sessions run on the same machine."""
from __future__ import annotations

import os
import time

from mpdash import procfs, protocol


def run_processes(server_pid: int) -> list[int]:
    """Live (non-zombie) processes started by the mpdash server with this pid."""
    found = []
    for name in filter(str.isdigit, os.listdir("/proc")):
        pid = int(name)
        if procfs.env_value(pid, protocol.ENV_SERVER_PID) == str(server_pid):
            stat = procfs.read_stat(pid)
            if stat is not None and stat.state not in ("Z", "X"):
                found.append(pid)
    return found


def assert_none_left(server_pid: int, within: float = 2.0) -> None:
    """Wait up to ``within`` s for every process of that server's runs to be gone."""
    deadline = time.monotonic() + within
    left = run_processes(server_pid)
    while left and time.monotonic() < deadline:
        time.sleep(0.02)
        left = run_processes(server_pid)
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
