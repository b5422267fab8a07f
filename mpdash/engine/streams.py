"""Reading a run: its processes' probe connections and its raw stdout/stderr pipes, each cut
into lines by ``protocol.LineBuffer`` (the one line splitter)."""
from __future__ import annotations

import logging
import os
import time

from mpdash import protocol
from mpdash.engine import handlers
from mpdash.engine.context import CONN, Core, LiveRun

log = logging.getLogger(__name__)
_CHUNK = 65536
_DRAIN_READS = 64    # bounded: a writer outside the run may keep a pipe open


def on_accept(core: Core, live: LiveRun, listener) -> None:
    """A process of the run connected to report (every process opens its own connection)."""
    while True:
        try:
            conn, _ = listener.accept()
        except (BlockingIOError, OSError):
            return
        conn.setblocking(False)
        live.conns[conn.fileno()] = (conn, protocol.LineBuffer())
        core.reactor.register(conn, CONN, lambda c: on_conn(core, live, c))


def on_conn(core: Core, live: LiveRun, conn) -> None:
    """Everything a connection has now, message by message; closed at its end."""
    _, lines = live.conns[conn.fileno()]
    closed = False
    while True:
        try:
            chunk = conn.recv(_CHUNK)
        except BlockingIOError:
            break
        except OSError:
            chunk = b""
        if not chunk:
            closed = True
            break
        for line in lines.feed(chunk):
            msg = protocol.decode(line)
            if msg is None:
                continue
            try:
                handlers.dispatch(core, live, msg)
            except Exception:   # one bad message must not cost the run its other messages
                log.exception("bad probe message %r", line[:200])
    if closed:   # a last line without its newline was cut short by the process's death: dropped
        core.reactor.unregister(conn)
        del live.conns[conn.fileno()]
        conn.close()


def on_pipe(core: Core, live: LiveRun, pipe) -> None:
    """Raw writes to fd 1/2 (C code, subprocesses): tagged with the run's main pid."""
    stream, _, lines = live.pipes[pipe.fileno()]
    try:
        chunk = os.read(pipe.fileno(), _CHUNK)
    except BlockingIOError:
        return
    except OSError:
        chunk = b""
    if chunk:
        for line in lines.feed(chunk):
            handlers.output(core, live, live.run.main_pid, stream,
                            line.decode("utf-8", "replace"), time.time())
        return
    rest = lines.flush()
    if rest:
        handlers.output(core, live, live.run.main_pid, stream, rest.decode("utf-8", "replace"),
                        time.time())
    close_pipe(core, live, pipe)


def close_pipe(core: Core, live: LiveRun, pipe) -> None:
    core.reactor.unregister(pipe)
    del live.pipes[pipe.fileno()]
    pipe.close()


def drain(core: Core, live: LiveRun) -> None:
    """Read what is left before the run ends."""
    for conn, _ in list(live.conns.values()):
        on_conn(core, live, conn)
    for _, pipe, _ in list(live.pipes.values()):
        for _ in range(_DRAIN_READS):
            if pipe.fileno() not in live.pipes:
                break
            on_pipe(core, live, pipe)


def close_all(core: Core, live: LiveRun) -> None:
    """The run has ended: close its connections, pipes and listening socket."""
    for conn, _ in list(live.conns.values()):
        core.reactor.unregister(conn)
        conn.close()
    live.conns.clear()
    for _, pipe, _ in list(live.pipes.values()):
        core.reactor.unregister(pipe)
        pipe.close()
    live.pipes.clear()
    core.reactor.unregister(live.listener)
    live.listener.close()
