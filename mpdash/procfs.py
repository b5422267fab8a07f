"""Reading ``/proc``, written once: the sampler's fast path and every other reader of it.

The engine (orphans, zombies, children nobody reported), the store (a process's identity) and
the tests read ``/proc/<pid>/stat``, ``environ`` and ``task/*/children`` through this module.
(The watchdog and the in-run probe keep their own small readers: each must run without importing
any other mpdash module.)

The sampler's path: one ``pread`` of ``/proc/<pid>/stat`` per process-sample.

``/proc/<pid>/stat`` alone carries everything a metrics frame needs — state letter, user and
system CPU ticks, thread count, start time, resident pages and the last CPU — so neither
``statm`` nor ``status`` is read. Each process's ``stat`` is opened once, at its first sample,
and re-read with ``pread`` from offset 0: measured on this machine that costs about half of a
fresh open+read+close. A kept fd also guards against pid reuse: once the process is reaped the
fd answers ``ESRCH`` instead of describing a newcomer with the same pid, and while it is a zombie
it still answers (CPU times intact), which is how a process sampled at its exit is still seen.

psutil stays the portable path (``mpdash.sampler`` falls back to it when ``/proc`` is absent).
"""
from __future__ import annotations

import functools
import os
import sys
import time

from mpdash import protocol

__all__ = ["available", "Stat", "parse_stat", "read_stat", "children_of", "environ", "env_value",
           "command_name", "parse_cpu_lines", "StatReader", "CoreMeter", "CLK_TCK", "PAGE_KIB",
           "process_cpu_ns", "has_process_cpu_clock", "any_thread_running"]

CLK_TCK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
PAGE_KIB = (os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096) // 1024
_READ = 1024   # a stat line is ~300 bytes; the comm field is at most 64


def available() -> bool:
    return os.path.exists(f"/proc/{os.getpid()}/stat")


class Stat(tuple):
    """(state, cpu_ticks, threads, start_ticks, rss_kib, core, ppid, pgid) of one ``stat`` line."""
    __slots__ = ()

    state = property(lambda self: self[0])
    cpu_ticks = property(lambda self: self[1])
    threads = property(lambda self: self[2])
    start_ticks = property(lambda self: self[3])
    rss_kib = property(lambda self: self[4])
    core = property(lambda self: self[5])
    ppid = property(lambda self: self[6])
    pgid = property(lambda self: self[7])


def parse_stat(data: bytes) -> Stat:
    """Parse a ``/proc/<pid>/stat`` line. The command name may hold spaces and parentheses,
    so fields are counted from the *last* ``)``. Field numbers as in proc(5)."""
    # Split no further than field 39 (processor): the sampler parses every process ten times a
    # second, and the dozen fields after it cost a third of the parse.
    fields = data[data.rindex(b")") + 2:].split(None, 37)
    # fields[0] is field 3 (state); field n is fields[n - 3]
    return Stat((chr(fields[0][0]),
                 int(fields[11]) + int(fields[12]),      # 14 utime + 15 stime
                 int(fields[17]),                        # 20 num_threads
                 int(fields[19]),                        # 22 starttime (ticks after boot)
                 int(fields[21]) * PAGE_KIB,             # 24 rss (pages)
                 int(fields[36]) if len(fields) > 36 else -1,    # 39 processor
                 int(fields[1]),                         # 4 ppid
                 int(fields[2])))                        # 5 pgrp


def read_stat(pid: int) -> Stat | None:
    """A process's stat from a fresh open (nothing kept), or None when it is gone."""
    try:
        with open(f"/proc/{pid}/stat", "rb", buffering=0) as f:
            return parse_stat(f.read(_READ))
    except (OSError, ValueError, IndexError):
        return None


def children_of(pid: int) -> set[int]:
    """The pids whose parent is ``pid`` now (every thread's children), empty when it is gone."""
    found: set[int] = set()
    try:
        for tid in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{tid}/children") as f:
                found.update(int(c) for c in f.read().split())
    except OSError:
        pass
    return found


def environ(pid: int) -> list[bytes] | None:
    """A process's environment as ``NAME=value`` items; None when unreadable (gone, a zombie,
    another user's)."""
    try:
        with open(f"/proc/{pid}/environ", "rb") as f:
            return f.read().split(b"\0")
    except OSError:
        return None


def env_value(pid: int, name: str, marker: str | None = None) -> str | None:
    """The value of ``name`` in a process's environment, or None; with ``marker``
    (``NAME=value``: one engine's token), only for a process that also carries it."""
    env = environ(pid)
    if env is None or (marker is not None and marker.encode() not in env):
        return None
    prefix = name.encode() + b"="
    for item in env:
        if item.startswith(prefix):
            return item[len(prefix):].decode(errors="replace")
    return None


def command_line(pid: int) -> str | None:
    """A process's command line as a shell would spell it (``sleep 1.5``, see
    ``protocol.command_text``); None when gone or a zombie (whose command line is gone)."""
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            args = f.read().split(b"\0")
    except OSError:
        args = []
    if args and args[-1] == b"":
        args.pop()
    return protocol.command_text([a.decode(errors="replace") for a in args]) if args else None


def command_name(pid: int) -> str | None:
    """``command_line``, or for a zombie its ``comm``; None when gone."""
    line = command_line(pid)
    if line:
        return line
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            data = f.read(_READ)
        return data[data.index(b"(") + 1:data.rindex(b")")].decode(errors="replace") or None
    except (OSError, ValueError):
        return None


class StatReader:
    """Reads processes' ``stat`` through fds kept open between samples."""

    def __init__(self, keep_open: bool = True):
        self.keep_open = keep_open
        self._fds: dict[int, int] = {}

    def read(self, pid: int) -> Stat | None:
        """The process's stat now, or None once it is gone (reaped)."""
        if not self.keep_open:
            return read_stat(pid)
        fd = self._fds.get(pid)
        if fd is None:
            try:
                fd = os.open(f"/proc/{pid}/stat", os.O_RDONLY | os.O_CLOEXEC)
            except OSError:
                return None
            self._fds[pid] = fd
        try:
            return parse_stat(os.pread(fd, _READ, 0))
        except (OSError, ValueError, IndexError):
            self.forget(pid)
            return None

    def forget(self, pid: int) -> None:
        fd = self._fds.pop(pid, None)
        if fd is not None:
            os.close(fd)

    def pids(self) -> list[int]:
        return list(self._fds)

    def close(self) -> None:
        for pid in list(self._fds):
            self.forget(pid)


def any_thread_running(pid: int, limit: int = 64) -> bool | None:
    """Is one of the process's threads running or runnable (``R``) right now? From
    ``/proc/<pid>/task/*/stat``; None when they cannot be read (gone, or not Linux).

    The process's own ``stat`` letter is its *main thread's*: a main waiting in ``join()`` while
    its other threads compute reads ``S``, which made the page say "sleeping" for a process at
    99 % CPU. It stops at the first running thread and reads at most ``limit`` of them (about
    50 µs a thread here), so a process with thousands of threads costs a bounded time."""
    try:
        tids = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return None
    for tid in tids[:limit]:
        try:
            with open(f"/proc/{pid}/task/{tid}/stat", "rb", buffering=0) as f:
                if parse_stat(f.read(_READ)).state == "R":
                    return True
        except (OSError, ValueError, IndexError):
            continue   # the thread ended between listdir and open
    return False


def _cpu_clock_id(pid: int) -> int:
    """The kernel's CPU clock of process ``pid`` (all its threads, ended ones included), as
    glibc's ``clock_getcpuclockid`` builds it: ``(~pid << 3) | CPUCLOCK_SCHED``. Linux lets
    any user read any process's clock, in nanoseconds, and still while it is a zombie."""
    return ((~pid) << 3) | 2


def process_cpu_ns(pid: int) -> int | None:
    """Nanoseconds of CPU process ``pid`` has used (None: gone, reaped, or no such clock).

    Why not ``stat``'s utime+stime: they are counted in 10 ms ticks, so a 16 ms window right
    after a birth reads 0, 10, 20 or 30 ms of CPU (0-190 %) for a process that ran 16 ms; and
    ``/proc/<pid>/schedstat`` is the main thread's alone. One syscall, ~0.5 us."""
    try:
        return time.clock_gettime_ns(_cpu_clock_id(pid))
    except (OSError, OverflowError, AttributeError):
        return None


def has_process_cpu_clock() -> bool:
    return sys.platform.startswith("linux") and process_cpu_ns(os.getpid()) is not None


def boot_clock():
    """``boot_seconds`` as a C-level callable: the sampler calls it once per process-sample."""
    return functools.partial(time.clock_gettime, time.CLOCK_BOOTTIME)


def boot_seconds() -> float:
    """Seconds since boot on the clock ``starttime`` counts on."""
    return time.clock_gettime(time.CLOCK_BOOTTIME)


def parse_cpu_lines(data: bytes) -> list[tuple[int, int]]:
    """``/proc/stat`` -> per core (busy ticks, total ticks)."""
    cores = []
    for line in data.split(b"\n"):
        if not line.startswith(b"cpu") or line.startswith(b"cpu "):
            continue
        if not line[3:4].isdigit():
            break
        v = [int(x) for x in line.split()[1:]]
        idle = v[3] + (v[4] if len(v) > 4 else 0)          # idle + iowait
        total = sum(v[:8])                                   # guest time is inside user already
        cores.append((total - idle, total))
    return cores


class CoreMeter:
    """Per-core CPU % between two calls, from a kept fd on ``/proc/stat``."""

    def __init__(self):
        self._fd = os.open("/proc/stat", os.O_RDONLY | os.O_CLOEXEC)
        self._prev = parse_cpu_lines(self._read())

    def _read(self) -> bytes:
        chunks, offset = [], 0
        while True:
            chunk = os.pread(self._fd, 65536, offset)
            if not chunk:
                return b"".join(chunks)
            chunks.append(chunk)
            offset += len(chunk)
            if b"\nintr" in chunk or b"\nctxt" in chunk:   # past the cpu lines: stop early
                return b"".join(chunks)

    def percent(self) -> list[float]:
        now = parse_cpu_lines(self._read())
        out = []
        for (busy, total), (pbusy, ptotal) in zip(now, self._prev):
            dt = total - ptotal
            # Bounded: iowait may go backwards (proc(5)), which would push busy past total.
            share = 100.0 * (busy - pbusy) / dt if dt > 0 else 0.0
            out.append(round(min(100.0, max(0.0, share)), 1))
        self._prev = now
        return out

    def close(self) -> None:
        os.close(self._fd)


# ------------------------------------------------------------------ where a process waits
# Read when a run's stacks are taken (mpdash/stacks.py): what the kernel says about a process,
# Python or not. Each answers None when the file is gone or unreadable (not our process).

def read_text(path: str, size: int = 4096) -> str | None:
    try:
        with open(path, "rb", buffering=0) as f:
            return f.read(size).decode("ascii", "replace")
    except OSError:
        return None


def caught_signals(pid: int) -> int | None:
    """The ``SigCgt`` mask of ``/proc/<pid>/status``: bit n-1 set when signal n has a handler."""
    text = read_text(f"/proc/{pid}/status", 8192)
    for line in (text or "").split("\n"):
        if line.startswith("SigCgt:"):
            return int(line.split()[1], 16)
    return None


def wchan(pid: int) -> str | None:
    """The kernel function a sleeping process waits in (``do_wait``, ``pipe_write``...)."""
    text = read_text(f"/proc/{pid}/wchan", 256)
    return text.strip() if text and text.strip() not in ("", "0") else None


def syscall(pid: int) -> int | str | None:
    """The number of the system call the process's main thread is blocked in, ``"running"``,
    or None (not in a system call, or the file is unreadable without ptrace rights)."""
    text = read_text(f"/proc/{pid}/syscall", 256)
    if not text:
        return None
    first = text.split()[0] if text.split() else ""
    if first == "running":
        return "running"
    return int(first) if first.isdigit() else None
