"""Lines for our terminal, written by a thread of their own.

Hub listeners run under the hub's lock, on the engine's threads: a terminal that scrolls slowly,
or a pipe nobody reads (``mpdash run | less``, stopped), must never hold that lock, or the
engine stops with it: stopping runs, reaping and every viewer's messages. They queue here.
"""
from __future__ import annotations

import queue
import sys
import threading


class Echo:
    """Writes lines to our terminal from its own thread: ``echo(stream, text)`` only queues."""

    def __init__(self, all_to_stderr: bool):
        self.all_to_stderr = all_to_stderr
        self._queue: queue.SimpleQueue = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._loop, name="mpdash-echo", daemon=True)
        self._thread.start()

    def __call__(self, stream: str, text: str) -> None:
        self._queue.put((stream, text))

    def _loop(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                return
            stream, text = item
            out = sys.stderr if self.all_to_stderr or stream == "err" else sys.stdout
            try:
                out.write(text + "\n")
                out.flush()
            except (OSError, ValueError):
                pass

    def close(self, timeout: float | None = 2.0) -> None:
        """Write what is queued (for up to ``timeout`` s; None: all of it), then stop."""
        self._queue.put(None)
        self._thread.join(timeout=timeout)
