"""Stacks on demand: every thread of this process dumps its Python stack when the server asks.

The server asks with a signal (``protocol.STACKS_SIGNAL_NAME``, SIGURG) and reads the dump from
this process's own file (``protocol.stacks_file``). ``faulthandler.register`` does the dumping,
not a Python-level handler: a Python handler runs only when the main thread gets back to the
interpreter loop, which never happens while it is blocked in C (``join()``/``waitpid``, a lock, a
pipe write) -- exactly when the stacks are wanted. faulthandler writes from inside the C signal
handler, with no lock and no allocation, whatever the threads are doing.

Why SIGURG: its default action is to do nothing, so a signal that reaches a process without our
handler (a non-Python child, a program that exec'd another) changes nothing; and hardly any
program handles it (the kernel sends it only for out-of-band TCP data to a socket owner set with
``F_SETOWN``; Go picked it for goroutine preemption for the same reasons). SIGUSR1/2 are taken by
many programs (servers reopen logs on them) and terminate by default; real-time signals terminate
by default and are used by POSIX timers.

Why chain only when needed: with ``chain=True`` faulthandler installs its handler without
``SA_RESTART`` and then calls the previous disposition. With nothing to chain to (SIGURG's
default is to ignore it), ``chain=False`` keeps ``SA_RESTART``, so a system call that our signal
interrupts is restarted by the kernel instead of returning EINTR to the program. Once the program
installs its own handler with ``signal.signal`` (patched below), faulthandler is re-registered
on top of it with ``chain=True``: our dump runs first, then the program's handler, as before.

Costs nothing until used: one file opened at start (and in each forked child), no thread, no
polling. Standard library only; CPython 3.10-3.14.
"""
from __future__ import annotations

import faulthandler
import functools
import os
import signal

from mpdash import protocol
from mpdash.inrun import hooks

__all__ = ["SIGNAL", "install", "after_fork_in_child", "installed"]

SIGNAL = getattr(signal, protocol.STACKS_SIGNAL_NAME)

_folder: str | None = None
_fd = -1                  # this process's dump file, the fd faulthandler writes to
_chain = False            # True once the program installed its own handler for SIGNAL
_original_signal = None   # signal.signal before our patch


def installed() -> bool:
    return _fd >= 0


def install() -> bool:
    """Register the dump for this process; False when not in a run or it cannot be done."""
    global _folder
    if _folder is not None:
        return installed()
    folder = os.environ.get(protocol.ENV_STACKS)
    if not folder or not hasattr(faulthandler, "register"):
        return False
    _folder = folder
    if not _open_and_register():
        return False
    _patch_signal()
    return True


@hooks.after_fork_in_child
def after_fork_in_child() -> None:
    """A forked child inherits the registration but also its parent's file: its dumps would
    land in the parent's. Give it its own (and close its copy of the parent's). Runs before the
    child's hello: once the server knows the child, it answers."""
    if _folder is not None and _fd >= 0:
        _open_and_register()


def _open_and_register() -> bool:
    global _fd
    try:
        fd = os.open(protocol.stacks_file(_folder, os.getpid()),
                     os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_APPEND | os.O_CLOEXEC, 0o600)
    except OSError:
        return False
    try:
        # Already registered (a forked child): this only swaps the fd faulthandler writes to.
        faulthandler.register(SIGNAL, fd, all_threads=True, chain=_chain)
    except (OSError, RuntimeError, ValueError):
        os.close(fd)
        return False
    old, _fd = _fd, fd
    if old >= 0:
        try:
            os.close(old)
        except OSError:
            pass
    return True


def _patch_signal() -> None:
    """``signal.signal(SIGNAL, handler)`` by the program would replace faulthandler's handler
    (one disposition per signal): put the program's in place, then ours on top, chained."""
    global _original_signal
    if _original_signal is not None:
        return
    original = _original_signal = signal.signal

    @functools.wraps(original)
    def signal_(signalnum, handler):
        if signalnum != SIGNAL or _fd < 0:
            return original(signalnum, handler)
        global _chain
        # unregister() puts back the disposition from before us, so the program's call
        # returns what it would have returned without mpdash.
        faulthandler.unregister(SIGNAL)
        try:
            return original(signalnum, handler)
        finally:
            _chain = callable(signal.getsignal(SIGNAL))
            try:
                faulthandler.register(SIGNAL, _fd, all_threads=True, chain=_chain)
            except (OSError, RuntimeError, ValueError):
                pass

    signal.signal = signal_
