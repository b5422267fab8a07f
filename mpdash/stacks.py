"""Where is it stuck? A Snapshot of every process of a live run: its threads' Python stacks, and
what the kernel says about it (state, wait channel, system call).

The in-run half (mpdash/inrun/stacks.py) registers faulthandler in every Python process of a
run for ``protocol.STACKS_SIGNAL_NAME``, writing to ``protocol.stacks_file(folder, pid)``. Here
we send that signal to each process that has both the file (it registered) and a handler for the
signal (``SigCgt``: it still has it, it did not exec something else), wait for each dump to be
complete, and parse it. A process that is not Python, or did not answer in time, still gets its
kernel view.

Snapshot (docs/API.md): ``{run, t, reason, processes: [{pid, name, python, state, wchan,
syscall, threads: [{id, name, main, frames: [{file, line, function}]}]}]}``, frames outermost
first, innermost last, as a Python traceback prints them. The Hub adds ``seq``.
"""
from __future__ import annotations

import os
import re
import signal
import threading
import time

from mpdash import procfs, protocol

__all__ = ["RunEnded", "StacksBusy", "Stacks", "parse_dump", "kernel_view", "take", "SIGNAL", "STATE_WORDS",
           "user_frame", "format_snapshot"]

SIGNAL = getattr(signal, protocol.STACKS_SIGNAL_NAME)
ANSWER_TIMEOUT = 1.0   # s for every process to finish its dump; later ones show threads: []
SETTLE = 0.05          # s a dump must stay unchanged when it lists fewer threads than the OS
POLL = 0.002           # s between two looks at the dump files

STATE_WORDS = {"R": "running", "S": "sleeping", "D": "disk sleep", "T": "stopped",
               "t": "tracing stop", "Z": "zombie", "X": "dead", "I": "idle", "P": "parked",
               "W": "waking", "K": "wakekill"}

# The system calls a stuck process is usually found in, by number, for /proc/<pid>/syscall.
_SYSCALLS = {
    "x86_64": {0: "read", 1: "write", 7: "poll", 17: "pread64", 18: "pwrite64", 19: "readv",
               20: "writev", 23: "select", 34: "pause", 35: "nanosleep", 42: "connect",
               43: "accept", 44: "sendto", 45: "recvfrom", 46: "sendmsg", 47: "recvmsg",
               61: "wait4", 72: "fcntl", 73: "flock", 128: "rt_sigtimedwait",
               130: "rt_sigsuspend", 202: "futex", 230: "clock_nanosleep", 232: "epoll_wait",
               247: "waitid", 270: "pselect6", 271: "ppoll", 281: "epoll_pwait",
               288: "accept4", 441: "epoll_pwait2"},
    "aarch64": {22: "epoll_pwait", 25: "fcntl", 32: "flock", 63: "read", 64: "write",
                65: "readv", 66: "writev", 67: "pread64", 68: "pwrite64", 72: "pselect6",
                73: "ppoll", 95: "waitid", 98: "futex", 101: "nanosleep",
                115: "clock_nanosleep", 133: "rt_sigsuspend", 137: "rt_sigtimedwait",
                202: "accept", 203: "connect", 206: "sendto", 207: "recvfrom", 211: "sendmsg",
                212: "recvmsg", 242: "accept4", 260: "wait4", 441: "epoll_pwait2"},
}.get(os.uname().machine, {})

_HEADER = re.compile(r"^(Current thread|Thread) 0x([0-9a-fA-F]+)(.*) \(most recent call first\):$")
_FRAME = re.compile(r'^  File "(.*)", line (\d+|\?\?\?) in (.*)$')


class StacksBusy(Exception):
    """Another Snapshot of the same run is being taken (HTTP 503: try again in a moment)."""


class RunEnded(Exception):
    """The run is not live (any more): nothing to take stacks of (HTTP 409)."""


# ------------------------------------------------------------------------------- parsing

def parse_dump(text: str) -> tuple[list[dict], bool]:
    """faulthandler's all-threads dump -> (threads, complete).

    Threads come as the interpreter lists them, newest first; the main thread's state is the
    oldest, so the last one is the main thread. ``complete`` is False while the text may still
    be growing (it does not end with a newline, or a header has no line under it yet).
    """
    threads: list[dict] = []
    current = None
    for line in text.split("\n")[:-1]:      # the part after the last newline is unfinished
        header = _HEADER.match(line)
        if header:
            current = {"id": "0x" + header.group(2).lower().lstrip("0").rjust(1, "0"),
                       "name": None, "main": False, "current": header.group(1) == "Current thread",
                       "frames": [], "lines": 0}
            threads.append(current)
            continue
        if current is None:
            continue
        frame = _FRAME.match(line)
        if frame:
            line_no = frame.group(2)
            current["frames"].append({"file": frame.group(1),
                                      "line": int(line_no) if line_no.isdigit() else None,
                                      "function": frame.group(3)})
            current["lines"] += 1
        elif line.startswith("  "):          # "<no Python frame>", "Garbage-collecting", "..."
            current["lines"] += 1
    complete = text.endswith("\n") and bool(threads) and all(t["lines"] for t in threads)
    for thread in threads:
        thread["frames"].reverse()           # outermost first, as a traceback prints them
        del thread["lines"]
    if threads:
        threads[-1]["main"] = True
        threads[-1]["name"] = "MainThread"
    return threads, complete


# ------------------------------------------------------------------------------- kernel view

def syscall_name(value) -> str | None:
    if value is None or value == "running":
        return value
    return _SYSCALLS.get(value, f"syscall {value}")


def kernel_view(pid: int) -> dict | None:
    """State, thread count, wait channel and system call of a process; None once it is gone."""
    stat = procfs.read_stat(pid)
    if stat is None:
        return None
    return {"state": stat.state, "os_threads": stat.threads, "wchan": procfs.wchan(pid),
            "syscall": syscall_name(procfs.syscall(pid))}


def _answers(pid: int, path: str) -> bool:
    """The process registered our dump (its file) and still has a handler for the signal."""
    if not os.path.exists(path):
        return False
    mask = procfs.caught_signals(pid)
    return mask is not None and bool(mask >> (SIGNAL - 1) & 1)


# ------------------------------------------------------------------------------- taking

def take(run_id: str, processes: list[tuple[int, str | None]], folder: str | None,
         reason: str, timeout: float = ANSWER_TIMEOUT, lesson_file: str | None = None) -> dict:
    """A Snapshot of ``processes`` ((pid, name) pairs, in the order to show them). Frames in
    ``lesson_file`` (a lesson's module) are marked ``lesson``: the page shows that file."""
    entries: dict[int, dict] = {}
    waiting: dict[int, list] = {}            # pid -> [path, offset, text, changed_at, os threads]
    now = time.time()
    for pid, name in processes:
        view = kernel_view(pid)
        if view is None:
            continue                          # ended since the list was made
        os_threads = view.pop("os_threads")
        entries[pid] = {"pid": pid, "name": name, "python": False, **view, "threads": []}
        path = protocol.stacks_file(folder, pid) if folder else None
        if path is None or view["state"] in ("Z", "X") or not _answers(pid, path):
            continue
        entries[pid]["python"] = True
        if view["state"] in ("T", "t"):
            continue                          # stopped (SIGSTOP, a debugger): cannot answer now
        try:
            offset = os.path.getsize(path)
            os.kill(pid, SIGNAL)
        except OSError:
            continue
        waiting[pid] = [path, offset, "", time.monotonic(), os_threads]
    deadline = time.monotonic() + timeout
    while waiting:
        for pid in list(waiting):
            if _collect(entries[pid], waiting[pid]):
                del waiting[pid]
        if not waiting or time.monotonic() >= deadline:
            break
        time.sleep(POLL)
    for pid, pending in waiting.items():     # no complete answer in time: what there is
        entries[pid]["threads"] = parse_dump(pending[2])[0]
    for entry in entries.values():
        for thread in entry["threads"]:
            thread.pop("current", None)
            for frame in thread["frames"]:
                frame["library"] = is_library(frame["file"])
                frame["lesson"] = frame["file"] == lesson_file
    return {"run": run_id, "t": now, "reason": reason, "processes": list(entries.values())}


def _collect(entry: dict, pending: list) -> bool:
    """Read what the process dumped so far; True once its dump is complete (or it is gone)."""
    path, offset, text, changed_at, os_threads = pending
    try:
        with open(path, "rb") as f:
            f.seek(offset)
            data = f.read(1 << 20).decode("ascii", "replace")
    except OSError:
        return True
    now = time.monotonic()
    if data != text:
        pending[2], pending[3] = data, now
    threads, complete = parse_dump(data)
    # Every OS thread listed: done at once. Fewer (threads started by C code have no Python
    # stack): done once the dump has stopped growing.
    if complete and (len(threads) >= os_threads or now - pending[3] >= SETTLE):
        entry["threads"] = threads
        return True
    if not data and procfs.read_stat(entry["pid"]) is None:
        return True                           # it ended before it could answer
    return False


class Stacks:
    """Takes Snapshots of a Hub's live runs, one at a time per run (two dumps asked of one
    process at once would interleave in its file; two runs share no process), and adds them
    to the run (``Hub.add_stacks``)."""

    def __init__(self, hub, folder_of):
        self.hub = hub
        self.folder_of = folder_of            # run id -> the run's dump folder
        self._locks: dict[str, threading.Lock] = {}
        self._locks_lock = threading.Lock()

    def _lock_of(self, run_id: str) -> threading.Lock:
        with self._locks_lock:
            for ended in [r for r in self._locks if r != run_id and not self._locks[r].locked()
                          and not getattr(self.hub.get(r), "live", False)]:
                del self._locks[ended]        # kept only while its run may be asked again
            return self._locks.setdefault(run_id, threading.Lock())

    def take(self, run_id: str, reason: str = "request", timeout: float = ANSWER_TIMEOUT,
             **extra) -> dict:
        """The run's Snapshot, added to it and published. Raises KeyError for an unknown run
        and RunEnded once it is not live (also when it ends while its stacks are taken)."""
        hub = self.hub
        lock = self._lock_of(run_id)
        if not lock.acquire(timeout=timeout * 3):
            raise StacksBusy("busy taking stacks of this run: try again")
        try:
            run = hub.get(run_id)
            if run is None:
                raise KeyError(run_id)
            live, procs = hub.atomic(_live_processes, run)
            if not live:
                raise RunEnded("the run has ended: its processes are gone")
            lesson_file = _lesson_file(run.lesson) if run.kind == "lesson" else None
            snapshot = {**take(run_id, procs, self.folder_of(run_id), reason, timeout,
                               lesson_file), **extra}
            added = hub.add_stacks(run, snapshot)
            if added is None:
                raise RunEnded("the run ended while its stacks were taken")
            return added
        finally:
            lock.release()


def _live_processes(run) -> tuple[bool, list[tuple[int, str | None]]]:
    """(the run is live, its live processes as (pid, name)); read in one piece."""
    return run.live, [(p.pid, p.name or p.role) for p in run.processes.values()
                      if p.ended_at is None]


def _lesson_file(lesson_id: str) -> str | None:
    from mpdash import lessons
    try:
        module = lessons.get(lesson_id).module
    except lessons.ParamError:
        return None
    return os.path.join(_MPDASH, *module.split(".")[1:]) + ".py"


# ------------------------------------------------------------------------------- reading

# "<string>": the one-line bootstrap multiprocessing gives spawned children, the forkserver and
# the resource tracker (``python -c "from multiprocessing..."``); a user's own ``python -c``
# program shows muted too, the price of never naming multiprocessing's code as the user's.
LIBRARY_MARKERS = ("/lib/python3", "/site-packages/", "/dist-packages/", "<frozen ", "<string>")
_MPDASH = os.path.dirname(os.path.abspath(__file__)) + os.sep
_MPDASH_USER = (os.path.join(_MPDASH, "lessons") + os.sep,)   # a lesson's file is its "own" code


def is_library(path: str) -> bool:
    """A frame of the standard library, an installed package or mpdash's in-run side, not of
    the user's program (or the lesson)."""
    if path.startswith(_MPDASH):
        return not path.startswith(_MPDASH_USER)
    return any(marker in path for marker in LIBRARY_MARKERS)


def user_frame(thread: dict) -> dict | None:
    """The innermost frame of the user's own code in a thread, or None."""
    for frame in reversed(thread["frames"]):
        if not frame.get("library"):
            return frame
    return None


def format_snapshot(snapshot: dict) -> list[str]:
    """The Snapshot as lines for a terminal, process by process like ``py-spy dump``: innermost
    call first under each thread."""
    head = f"stacks of run {snapshot['run']} ({snapshot['reason']})"
    if snapshot.get("stalled_for") is not None:
        head = (f"stuck for {snapshot['stalled_for']:.1f} s — where each process is waiting "
                f"({head})")
    lines = [head]
    for proc in snapshot["processes"]:
        state = STATE_WORDS.get(proc["state"], proc["state"])
        where = ", ".join(x for x in (proc.get("wchan") and f"in {proc['wchan']}",
                                      proc.get("syscall") and f"syscall {proc['syscall']}"
                                      if proc.get("syscall") != "running" else None) if x)
        lines.append(f"Process {proc['pid']}: {proc['name'] or '?'} — {state}"
                     f"{' (' + where + ')' if where else ''}"
                     f"{'' if proc['python'] else ' — not Python, no stack'}")
        for thread in proc["threads"]:
            label = f' "{thread["name"]}"' if thread["name"] else ""
            lines.append(f"  Thread {thread['id']}{label}{' (main)' if thread['main'] else ''}"
                         f" (most recent call first):")
            for frame in reversed(thread["frames"]):
                lines.append(f"    {frame['file']}:{frame['line']} in {frame['function']}")
            if not thread["frames"]:
                lines.append("    <no Python frame>")
    return lines
