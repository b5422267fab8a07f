"""Finding processes a test left behind: every process of a run carries the server's pid in
its environment (MPDASH_SERVER_PID), so a scan of /proc finds exactly the ones a given server
started, even while other test sessions run on the same machine."""
from __future__ import annotations

import os
import time


def run_processes(server_pid: int) -> list[int]:
    """Live (non-zombie) processes started by the mpdash server with this pid."""
    marker = f"MPDASH_SERVER_PID={server_pid}".encode()
    found = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/environ", "rb") as f:
                env = f.read()
            with open(f"/proc/{name}/stat", "rb") as f:
                stat = f.read()
        except OSError:
            continue
        state = stat[stat.rfind(b")") + 2:][:1]
        if marker in env.split(b"\0") and state not in (b"Z", b"X"):
            found.append(int(name))
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
        try:
            with open(f"/proc/{name}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if fields[0] == "Z" and int(fields[1]) == parent and group in (None, int(fields[2])):
            found.append(int(name))
    return found
