"""The children this process starts with ``subprocess`` and the exits it collects.

- ``subprocess.Popen`` → ``spawned {child, name, role: "child"}`` the moment the child exists,
  named by its command (``sleep 1.5``), so the server knows it before any scan of /proc;
- ``os.wait``, ``os.waitpid``, ``os.wait3``, ``os.wait4``, ``os.waitid`` and ``subprocess``'s
  own reap → ``reaped {child, code}``.

Why: only the parent can collect a child's exit status; when the parent is a process of the run
(not the server) the server's pidfd sees the exit but never the code. multiprocessing's
``Popen.poll`` goes through ``os.waitpid`` too, so its children are covered here as well.
A code is the one multiprocessing reports: the exit status, or minus the signal number.
"""
from __future__ import annotations

import functools
import os

from mpdash import protocol
from mpdash.inrun import channel, role

def _reaped(pid: int, code: int) -> None:
    try:
        channel.send(protocol.REAPED, child=pid, code=code)
    except Exception:   # at interpreter shutdown (a Popen's __del__) modules may be half gone
        pass


def _reaped_status(pid: int, status: int) -> None:
    if pid <= 0:
        return
    try:
        code = os.waitstatus_to_exitcode(status)
    except ValueError:   # stopped or continued: not an end
        return
    _reaped(pid, code)


def _status_waiter(original, index: int = 0):
    """A wait function whose result holds (pid, status, ...) at ``index``."""
    @functools.wraps(original)
    def wait(*args, **kwargs):
        result = original(*args, **kwargs)
        _reaped_status(result[index], result[index + 1])
        return result
    return wait


def _waitid(original):
    @functools.wraps(original)
    def waitid(*args, **kwargs):
        result = original(*args, **kwargs)
        options = args[2] if len(args) > 2 else kwargs.get("options", 0)
        if result is not None and not options & getattr(os, "WNOWAIT", 0):
            if result.si_code == os.CLD_EXITED:
                _reaped(result.si_pid, result.si_status)
            elif result.si_code in (os.CLD_KILLED, os.CLD_DUMPED):
                _reaped(result.si_pid, -result.si_status)
        return result
    return waitid


def patch_os() -> None:
    """Patch the wait functions of ``os`` (always imported), once per process tree: a fork
    inherits the patched module."""
    if getattr(os.waitpid, "_mpdash", False):
        return
    for name in ("wait", "waitpid", "wait3", "wait4"):
        original = getattr(os, name, None)
        if original is not None:
            wrapper = _status_waiter(original)
            wrapper._mpdash = True
            setattr(os, name, wrapper)
    if hasattr(os, "waitid"):
        os.waitid = _waitid(os.waitid)


def command_name(args) -> str:
    """``args`` of a Popen as a shell spells them (a string: a shell's command, as given)."""
    if isinstance(args, (str, bytes, os.PathLike)):
        text, most = os.fsdecode(args), protocol.MAX_COMMAND
        return text if len(text) <= most else text[:most - 1] + "…"
    return protocol.command_text([os.fsdecode(a) for a in args])


def patch_subprocess(subprocess) -> None:
    """Patch the module ``subprocess``."""
    popen = subprocess.Popen
    original_execute, original_handle = popen._execute_child, popen._handle_exitstatus

    @functools.wraps(original_execute)
    def _execute_child(self, args, *rest, **kwargs):
        original_execute(self, args, *rest, **kwargs)
        try:
            name = command_name(args)
        except (TypeError, ValueError):
            name = None
        try:
            channel.send(protocol.SPAWNED, child=self.pid, name=name, daemon=False, method=None,
                         role=role.CHILD)
        except Exception:   # tracing must never break the program it watches
            pass

    @functools.wraps(original_handle)
    def _handle_exitstatus(self, *args, **kwargs):
        before = self.returncode
        result = original_handle(self, *args, **kwargs)
        if before is None and self.returncode is not None:
            _reaped(self.pid, self.returncode)
        return result

    popen._execute_child, popen._handle_exitstatus = _execute_child, _handle_exitstatus
