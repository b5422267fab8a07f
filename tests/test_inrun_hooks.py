"""The in-run side's one after-fork path (mpdash/inrun/hooks.py)."""
from __future__ import annotations

import os

from mpdash.inrun import budget, capture, hooks


def test_every_reset_runs_in_order_even_after_one_fails(monkeypatch):
    monkeypatch.setattr(hooks, "_after_fork_in_child", [])
    ran = []

    @hooks.after_fork_in_child
    def first():
        ran.append("first")
        raise RuntimeError("broken")

    def second():
        ran.append("second")

    assert hooks.after_fork_in_child(second) is second
    hooks.after_fork_in_child(second)   # registered once
    hooks.run_after_fork_in_child()
    assert ran == ["first", "second"]


def test_the_modules_with_per_process_state_register_their_reset():
    assert budget.state.fresh in hooks._after_fork_in_child
    assert capture._reset_after_fork in hooks._after_fork_in_child


def test_a_forked_budget_starts_fresh(monkeypatch):
    monkeypatch.setattr(budget.state, "traffic", {"Queue-1": {"bytes": 0, "puts": 3}})
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:   # the child: what the after-fork path leaves, through the pipe
        try:
            hooks.run_after_fork_in_child()
            os.write(write, b"%d %d" % (len(budget.state.traffic), budget.state.pid == os.getpid()))
        finally:
            os._exit(0)
    os.close(write)
    try:
        assert os.read(read, 64) == b"0 1"
    finally:
        os.close(read)
        assert os.waitpid(pid, 0)[1] == 0
    assert budget.state.traffic == {"Queue-1": {"bytes": 0, "puts": 3}}   # the parent's, kept


def test_a_plain_fork_reads_its_own_command_line_without_importing(monkeypatch):
    """What a plain fork's hello carries (mpdash/inrun/lifecycle.py): /proc/self/cmdline as a
    list, read in the child with no import (an import lock may be held at the fork)."""
    import sys
    from mpdash.inrun import lifecycle
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            before = set(sys.modules)
            argv = lifecycle._own_argv()
            os.write(write, repr((argv, sorted(set(sys.modules) - before))).encode())
        finally:
            os._exit(0)
    os.close(write)
    with os.fdopen(read) as f:
        argv, imported = eval(f.read())
    os.waitpid(pid, 0)
    with open(f"/proc/{os.getpid()}/cmdline", "rb") as f:
        mine = [a.decode() for a in f.read().split(b"\0")[:-1]]
    assert argv == mine and imported == []
