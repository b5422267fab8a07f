"""Processes coming and going: pidfds, exit codes, how a process ended, and finding through
/proc the processes nobody reported (os.fork, subprocess, C code), orphans and zombies.

The server is a child subreaper, so a run's orphans become its children and are reaped here.
"""
from __future__ import annotations

import os
import subprocess
import time

from mpdash import procfs, protocol
from mpdash.engine import limits, stopping
from mpdash.engine.context import PIDFD, Core, LiveRun

# A process that is not multiprocessing's (subprocess, os.fork, C code): role "child" (API.md).
CHILD = "child"
# How a process ended when nobody in the run could know: its parent reaped it and is not a
# Python process of the run (a shell, a C program), so no exit code ever reached the server.
UNKNOWN = "unknown"


def decode_wait(info) -> int:
    """waitid result -> the exit code as multiprocessing reports it (negative = signal)."""
    if info.si_code == os.CLD_EXITED:
        return info.si_status
    return -info.si_status


def birth(core: Core, live: LiveRun, pid: int, t: float | None = None, **fields) -> None:
    """A process of the run is known: record it, watch its exit through a pidfd."""
    run, hub = live.run, core.hub
    fields = {k: v for k, v in fields.items() if v is not None}
    if fields.get("role") == CHILD and "name" not in fields:
        fields["name"] = procfs.command_name(pid)   # not multiprocessing's: its command is its name
        live.named_by_proc.add(pid)
    proc = hub.upsert_process(run, pid, started_at=t or time.time(), **fields)
    try:
        fd = os.pidfd_open(pid)
    except ProcessLookupError:
        fd = None
    hub.publish_proc(run, proc, "start")
    if fd is None:
        ended(core, live, pid)
        return
    live.pidfds[pid] = fd
    core.reactor.register(fd, PIDFD, lambda _fd: ended(core, live, pid))
    core.on_birth(run, pid)
    reason = limits.over_processes(hub, run) if run.stop_reason is None else None
    if reason:
        stopping.request_stop(core, run.id, reason, False, at_once=True)


def reap(live: LiveRun, pid: int) -> int | None:
    """Collect the exit status if the process is our child (the main, or an orphan)."""
    if pid == live.popen.pid:
        try:
            return live.popen.wait(timeout=1)
        except subprocess.TimeoutExpired:
            return None
    fd = live.pidfds.get(pid)
    try:
        info = os.waitid(os.P_PIDFD, fd, os.WEXITED | os.WNOHANG) if fd is not None \
            else os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG)
    except (ChildProcessError, OSError):
        return None
    return decode_wait(info) if info is not None else None


def ended(core: Core, live: LiveRun, pid: int) -> None:
    """A process exited (its pidfd said so, or the run ends without having seen it)."""
    run, hub = live.run, core.hub
    fd = live.pidfds.pop(pid, None)
    if fd is not None:
        core.on_death(run, pid)
    code = reap(live, pid)
    if fd is not None:
        core.reactor.unregister(fd)
        os.close(fd)
    extra = {}
    if code is None:
        code = live.codes.get(pid)
    elif pid != run.main_pid:
        # Only our children can be reaped here, and besides the main those are orphans
        # re-parented to us: one that died between two scans is marked all the same.
        extra = {"orphan": True, "ppid": core.server_pid}
    proc = hub.upsert_process(run, pid, ended_at=time.time(), exitcode=code,
                              end=end_kind(live, pid, code), **extra)
    hub.publish_proc(run, proc, "exit")
    if pid == run.main_pid:
        live.main_exited_at = time.monotonic()


def exit_code(core: Core, live: LiveRun, pid: int, code: int) -> None:
    """The run told us a code; if the exit was already announced without it, amend it."""
    live.codes[pid] = code
    proc = live.run.processes.get(pid)
    if proc is not None and proc.ended_at is not None and proc.exitcode is None:
        proc = core.hub.upsert_process(live.run, pid, exitcode=code,
                                       end=end_kind(live, pid, code))
        core.hub.publish_proc(live.run, proc, "exit")


def end_kind(live: LiveRun, pid: int, code: int | None) -> str | None:
    """How a process ended; None while its code is unknown (a grandchild its parent has
    not reaped yet): nobody killed it, so "killed" would be a lie, and "crash" a guess."""
    run = live.run
    if code == 0:
        return "exit"
    if run.stop_reason is not None or pid in live.killed:
        return "killed"
    if pid in run.terminated and (code is None or code < 0):
        return "terminated"
    return "crash" if code is not None else None


def settle_unknown(core: Core, live: LiveRun) -> None:
    """At a run's end: an ended process whose code nobody reported ended "unknown", never a
    silent null (its parent reaped it and told no one: a shell, a C program)."""
    for proc in list(live.run.processes.values()):
        if proc.ended_at is not None and proc.exitcode is None and proc.end is None:
            core.hub.publish_proc(live.run, core.hub.upsert_process(live.run, proc.pid,
                                                                    end=UNKNOWN), "exit")


def rename(core: Core, live: LiveRun, pid: int) -> None:
    """A child named from its command line may have exec'd since (a shell forks a copy of
    itself, which then becomes ``sleep``): it is named by what it runs now."""
    proc = live.run.processes.get(pid)
    if proc is None or proc.role != CHILD:
        live.named_by_proc.discard(pid)
        return
    name = procfs.command_line(pid)   # not a zombie's comm: it keeps the name it had
    if name and name != proc.name:
        core.hub.publish_proc(live.run, core.hub.upsert_process(live.run, pid, name=name),
                              "update")


def discover(core: Core) -> None:
    """Children the probe cannot report (os.fork, subprocess, C code), orphans, zombies."""
    my_children = procfs.children_of(core.server_pid)
    adopt(core, my_children)
    for live in list(core.live.values()):
        run = live.run
        # With a cgroup, one read of it lists every process of the run, however started:
        # reading every live process's children (a listdir and a file per thread) cost ~40 us
        # a process, 2 % of a core twice a second with 256 processes.
        in_cgroup = live.cgroup.pids() if live.cgroup is not None else None
        for pid in list(run.live_pids()):
            stat = procfs.read_stat(pid)
            if stat is None:
                continue
            if stat.ppid == core.server_pid and pid != run.main_pid and \
                    not run.processes[pid].orphan:
                proc = core.hub.upsert_process(run, pid, orphan=True, ppid=stat.ppid)
                core.hub.publish_proc(run, proc, "update")
            if pid in live.named_by_proc:
                rename(core, live, pid)
            if in_cgroup is None:
                for child in procfs.children_of(pid) - set(run.processes):
                    # Unreported so far: a multiprocessing child says hello at once and
                    # becomes a worker then; what stays a child is what the probe cannot see
                    # (exec'd programs).
                    birth(core, live, child, ppid=pid, role=CHILD)
        for pid in sorted((in_cgroup or set()) - set(run.processes)):
            stat = procfs.read_stat(pid)
            if stat is not None:
                birth(core, live, pid, ppid=stat.ppid, role=CHILD,
                      orphan=stat.ppid == core.server_pid)
        # Orphans that died before we noticed them are our zombies now: reap them.
        for pid in my_children & set(run.processes):
            if pid != run.main_pid and pid not in live.pidfds:
                code = reap(live, pid)
                if code is not None:
                    exit_code(core, live, pid, code)


def reap_strays(core: Core) -> None:
    """Zombies re-parented to us (the subreaper) that no run tracked: a fork bomb's
    children killed with their group, orphans that died between two scans. Their process
    group says they were ours; a zombie nobody reaps would stay until the server exits."""
    # Not a process a live run still tracks: its pidfd handler reaps it and records its code
    # (an orphan that dies just before a timer round would otherwise lose its exit code).
    tracked = {pid for live in core.live.values() for pid in (live.popen.pid, *live.pidfds)}
    for pid in procfs.children_of(core.server_pid) - tracked:
        stat = procfs.read_stat(pid)
        if stat is not None and stat.state == "Z" and stat.pgid in core.groups:
            try:
                os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG)
            except ChildProcessError:
                pass


def adopt(core: Core, my_children: set[int]) -> None:
    """Processes of a run nobody reported: in its cgroup (setsid cannot hide them), or
    orphans re-parented to us (the subreaper) before a scan saw them under their parent."""
    known = {pid for live in core.live.values() for pid in live.run.processes}
    for live in list(core.live.values()):
        if live.cgroup is not None:
            for pid in sorted(live.cgroup.pids() - known):
                stat = procfs.read_stat(pid)
                if stat is not None:
                    birth(core, live, pid, ppid=stat.ppid, role=CHILD,
                          orphan=stat.ppid == core.server_pid)
                    known.add(pid)
    groups = {live.popen.pid: live for live in core.live.values()}
    for pid in sorted(my_children - known):
        stat = procfs.read_stat(pid)
        if stat is None:
            continue
        # A zombie's environment is gone, but its process group stays readable.
        run_id = procfs.env_value(pid, protocol.ENV_RUN_ID, core.marker)
        live = core.live.get(run_id) or groups.get(stat.pgid)
        if live is not None:
            birth(core, live, pid, ppid=core.server_pid, role=CHILD, orphan=True)
