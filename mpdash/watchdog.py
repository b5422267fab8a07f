"""The server's dead-man switch: ``python -I -S watchdog.py MARKER [--tmp DIR] [CGROUP_DIR...]``.

The engine starts one per server, in its own session, holding the read end of a pipe whose
write end only the server has. When that pipe reaches EOF the server is gone, however it went
(SIGKILL included, when no handler of ours runs): the watchdog then kills

- every cgroup it was given (``cgroup.kill`` takes every run, ``setsid`` or not), and
- every process whose environment carries ``MARKER`` (``MPDASH_ENGINE=<token>``, set in each
  run's environment and inherited by all its processes),

scanning again until two scans in a row find nothing; then removes the cgroups and the
engine's private folder (``--tmp``: the runs' sockets, stack dumps and lessons' ``TMPDIR``),
and exits. The ``PR_SET_PDEATHSIG`` chain
usually got there first; this catches what it cannot: processes that are not Python (no probe),
that left the process group, or whose parent thread was still alive.

Plain stdlib, no mpdash import, ``-S``: it must start fast and depend on nothing.
"""
import os
import signal
import sys
import time


def _matching(marker: bytes) -> list[int]:
    me = os.getpid()
    found = []
    for name in os.listdir("/proc"):
        if not name.isdigit() or int(name) == me:
            continue
        try:
            with open(f"/proc/{name}/environ", "rb") as f:
                env = f.read()
        except OSError:
            continue
        if marker in env.split(b"\0"):
            found.append(int(name))
    return found


def sweep(marker: bytes, cgroups: list[str], budget: float = 2.0) -> int:
    """Kill until nothing is left (or the budget is spent); returns how many pids were hit."""
    hit: set[int] = set()
    quiet = 0
    deadline = time.monotonic() + budget
    while quiet < 2 and time.monotonic() < deadline:
        for path in cgroups:
            try:
                with open(os.path.join(path, "cgroup.kill"), "w") as f:
                    f.write("1")
            except OSError:
                pass
        pids = _matching(marker)
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass
        hit.update(pids)
        quiet = 0 if pids else quiet + 1
        time.sleep(0.02)
    return len(hit)


def rmtree_cgroup(path: str) -> None:
    """rmdir a cgroup and its children, deepest first (cgroups hold no files to delete)."""
    for root, dirs, _ in os.walk(path, topdown=False):
        for d in dirs:
            try:
                os.rmdir(os.path.join(root, d))
            except OSError:
                pass
    try:
        os.rmdir(path)
    except OSError:
        pass


def main(argv: list[str]) -> int:
    # Ctrl-C in a terminal goes to the whole foreground group: the watchdog must outlive it.
    for sig in (signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, signal.SIG_IGN)
    marker = argv[0].encode()
    rest = argv[1:]
    tmp = None
    if rest[:1] == ["--tmp"]:
        tmp, rest = rest[1], rest[2:]
    cgroups = rest
    try:
        while os.read(0, 4096):
            pass
    except OSError:
        pass
    sweep(marker, cgroups)
    for path in cgroups:   # empty now
        rmtree_cgroup(path)
    # Only the folder the marker names (MPDASH_ENGINE=<its name>): never anything else.
    if tmp and os.path.basename(tmp.rstrip("/")).encode() == marker.split(b"=", 1)[-1]:
        import shutil
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
