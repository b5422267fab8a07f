"""stdout/stderr of a process as one OUT message per printed line, tagged with its pid.

Prints of two processes never interleave mid-line this way (a pipe shared by all of them
would: ``print`` writes the text and the newline separately).
"""
from __future__ import annotations

import sys
import threading

from mpdash import protocol
from mpdash.inrun import channel, hooks


class LineWriter:
    """Stands in for sys.stdout/sys.stderr: sends each complete line."""

    def __init__(self, stream: str, original):
        self.stream = stream
        self.original = original
        self._lines = protocol.LineBuffer()
        self._lock = threading.Lock()
        self.encoding = "utf-8"
        self.errors = "replace"

    def write(self, text) -> int:
        if not isinstance(text, str):
            raise TypeError(f"write() argument must be str, not {type(text).__name__}")
        with self._lock:
            for line in self._lines.feed(text):
                self._send(line)
        return len(text)

    def _send(self, line: str) -> None:
        if len(line) > protocol.MAX_LINE:
            line = line[:protocol.MAX_LINE] + f"… [{len(line) - protocol.MAX_LINE} more characters]"
        channel.send(protocol.OUT, s=self.stream, x=line)

    def flush(self) -> None:
        with self._lock:
            line = self._lines.flush()
            if line:
                self._send(line)

    def reset_after_fork(self) -> None:
        # The parent's half-written line belongs to the parent; and its lock may be held.
        self._lock = threading.Lock()
        self._lines = protocol.LineBuffer()

    # What code that pokes at sys.stdout expects to find.
    def fileno(self) -> int:
        return self.original.fileno()

    @property
    def buffer(self):
        return self.original.buffer

    def isatty(self) -> bool:
        return False

    def writable(self) -> bool:
        return True

    def readable(self) -> bool:
        return False

    def writelines(self, lines) -> None:
        for line in lines:
            self.write(line)

    @property
    def closed(self) -> bool:
        return False

    def close(self) -> None:
        self.flush()


def install() -> None:
    sys.stdout = LineWriter(protocol.STDOUT, sys.stdout)
    sys.stderr = LineWriter(protocol.STDERR, sys.stderr)


@hooks.after_fork_in_child
def _reset_after_fork() -> None:
    for stream in (sys.stdout, sys.stderr):
        if isinstance(stream, LineWriter):
            stream.reset_after_fork()
