"""What the engine's modules share: the engine's core state and the record of a live run."""
from __future__ import annotations

import os
import subprocess
import socket
from dataclasses import dataclass, field
from typing import Callable

from mpdash.cgroups import Cgroups, RunCgroup
from mpdash.engine.reactor import Reactor
from mpdash.state import Hub, Run

# Order in which ready fds are handled in one wake-up: what a process said before it died
# (its exit code, a terminate() call) must be read before its pidfd reports the death.
ACCEPT, CONN, PIPE, PIDFD = 1, 2, 3, 4


class EngineBusy(RuntimeError):
    """The supervisor thread did not take a request in time, or is shutting down (HTTP 503)."""


class LimitError(RuntimeError):
    """A start refused because a limit is already reached (HTTP 429)."""


@dataclass
class LiveRun:
    """What the supervisor holds for a run while it is live."""
    run: Run
    popen: subprocess.Popen
    listener: socket.socket
    sock_path: str
    analyze: Callable | None
    echo: Callable[[str, str], None] | None
    conns: dict = field(default_factory=dict)        # fileno -> (socket, LineBuffer)
    pidfds: dict = field(default_factory=dict)       # pid -> fd
    codes: dict = field(default_factory=dict)        # pid -> exit code reported by the run
    pipes: dict = field(default_factory=dict)        # fileno -> (stream, file, LineBuffer)
    deadline: float | None = None                    # time limit
    kill_at: float | None = None                     # SIGKILL after the SIGTERM grace
    main_exited_at: float | None = None
    waiters: list = field(default_factory=list)      # futures resolved when the run ends
    killed: set = field(default_factory=set)         # pids the server itself SIGKILLed
    named_by_proc: set = field(default_factory=set)  # children named from /proc: renamed on exec
    cgroup: RunCgroup | None = None                  # None: process group only (fallback)
    live_pools: object = None                        # engine.livepools.LivePools, once ticked


@dataclass
class Core:
    """The engine's state. Only the reactor's thread changes it (callers go through
    ``reactor.call``), so it needs no lock of its own."""
    hub: Hub
    reactor: Reactor
    cgroups: Cgroups
    server_pid: int
    tmp: str                     # private folder of the runs' sockets
    marker: str                  # NAME=token in every run process's environment
    on_birth: Callable
    on_death: Callable           # the instant an exit is seen, before anyone reaps
    on_finish: Callable          # last chance to add to a live run
    # False: runs start without the in-run stacks half (benchmarks measure what it costs)
    stacks: bool = True
    live: dict = field(default_factory=dict)        # run id -> LiveRun
    groups: set = field(default_factory=set)        # every run's process group, for strays
    strays_until: float = 0.0                       # keep reaping strays until then
    next_discovery: float = 0.0


def stacks_folder(core: Core, run_id: str) -> str:
    """Where the Python processes of a run write their stack dumps (mpdash/stacks.py)."""
    return os.path.join(core.tmp, f"{run_id}.stacks")


# multiprocessing's forkserver and Manager put a Unix socket at TMPDIR/pymp-XXXXXXXX/
# listener-XXXXXXXX (32 characters more), and a socket's path holds at most 107.
MAX_SCRATCH = 107 - 32


def scratch_folder(core: Core, run_id: str) -> str:
    """A lesson's ``TMPDIR``: whatever it (or multiprocessing) leaves in temporary files goes
    when the run ends, however it ends (a Stop mid-run skips the lesson's own cleanup)."""
    return os.path.join(core.tmp, f"{run_id}.t")


def has_scratch(core: Core, run) -> bool:
    """Lessons only (a watched program's environment is its own), and only where the socket
    paths multiprocessing makes under it still fit (a server with a very long TMPDIR)."""
    return run.kind != "watch" and len(scratch_folder(core, run.id)) <= MAX_SCRATCH
