"""The selector loop: one thread waits on every fd of every run, and runs requests for others.

The thread must live as long as the server: ``PR_SET_PDEATHSIG`` fires when the *thread* that
forked a child exits. Other threads never touch the engine's state: they ``call`` a function,
which runs on this thread between two wake-ups, and get a Future.
"""
from __future__ import annotations

import concurrent.futures
import logging
import os
import queue
import selectors
import threading
import time
from typing import Callable

log = logging.getLogger(__name__)

_WAKE = 0   # the wake-up pipe is handled first in a wake-up: requests may change what is ready


class Reactor:
    """``tick()`` runs after every wake-up and returns the seconds until the next one it needs
    (None: nothing planned). The loop ends once ``close`` was called and ``idle()`` is true."""

    def __init__(self, tick: Callable[[], float | None], idle: Callable[[], bool],
                 name: str = "mpdash-supervisor"):
        self._tick = tick
        self._idle = idle
        self._sel = selectors.DefaultSelector()
        self._requests: queue.SimpleQueue = queue.SimpleQueue()
        self._wake_r, self._wake_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        self._sel.register(self._wake_r, selectors.EVENT_READ, (_WAKE, self._on_wake))
        self.closing = False
        self._thread = threading.Thread(target=self._loop, name=name, daemon=True)

    def start(self) -> None:
        self._thread.start()

    # -- registration (on the loop's thread) -------------------------------------------------
    def register(self, fileobj, order: int, callback: Callable) -> None:
        """Call ``callback(fileobj)`` when it is readable; lower ``order`` first in a wake-up."""
        self._sel.register(fileobj, selectors.EVENT_READ, (order, callback))

    def unregister(self, fileobj) -> None:
        self._sel.unregister(fileobj)

    # -- requests from other threads ---------------------------------------------------------
    def call(self, fn, *args) -> concurrent.futures.Future:
        """Run ``fn(*args)`` on the loop's thread (at once when already on it)."""
        fut: concurrent.futures.Future = concurrent.futures.Future()
        if threading.current_thread() is self._thread:
            self._run_request(fn, args, fut)
        else:
            if self.closing:
                raise RuntimeError("engine is shut down")
            self._requests.put((fn, args, fut))
            self.wake()
        return fut

    def wake(self) -> None:
        try:
            os.write(self._wake_w, b"x")
        except OSError:
            pass

    def close(self, timeout: float) -> None:
        """End the loop once idle, and wait for it."""
        self.closing = True
        self.wake()
        self._thread.join(timeout=timeout)

    @staticmethod
    def _run_request(fn, args, fut) -> None:
        if not fut.set_running_or_notify_cancel():
            return   # the caller gave up waiting and cancelled it: do nothing
        try:
            fut.set_result(fn(*args))
        except BaseException as exc:
            fut.set_exception(exc)

    def _on_wake(self, fd) -> None:
        try:
            while os.read(fd, 4096):
                pass
        except BlockingIOError:
            pass
        while True:
            try:
                fn, args, fut = self._requests.get_nowait()
            except queue.Empty:
                return
            self._run_request(fn, args, fut)

    # -- the loop ----------------------------------------------------------------------------
    def _loop(self) -> None:
        timeout: float | None = 0.0
        while not (self.closing and self._idle()):
            try:
                ready = self._sel.select(1.0 if timeout is None else timeout)
                ready.sort(key=lambda item: item[0].data[0])
                mapping = self._sel.get_map()
                for key, _ in ready:
                    # An earlier handler of this same wake-up may have closed what is ready
                    # (and its fd number may even be reused by now): only a key still
                    # registered as it was is handled.
                    if mapping.get(key.fd) is key:
                        key.data[1](key.fileobj)
                timeout = self._tick()
            except Exception:  # the supervisor must never die: every run depends on it
                log.exception("supervisor loop")
                time.sleep(0.01)
        for key in list(self._sel.get_map().values()):
            self._sel.unregister(key.fileobj)
        os.close(self._wake_r)
        os.close(self._wake_w)
