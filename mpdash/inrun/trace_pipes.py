"""User-level ``multiprocessing.Pipe()`` ends, send/recv → ``pipe_send`` / ``pipe_recv``.

Only ``Pipe()`` connections made by the program are traced: the internal connections of
``Queue``, ``SimpleQueue``, ``Pool`` and managers are made with ``connection.Pipe`` directly,
never through ``multiprocessing.Pipe``, so they stay untouched.
"""
from __future__ import annotations

import time

from mpdash import protocol
from mpdash.inrun import budget, envelope, naming
from mpdash.inrun.shortrepr import short_repr

_END = "_mpdash_end"   # 0 or 1: the index of a connection in Pipe()'s pair


def patch_pipe(context) -> None:
    """Name the two ends of every Pipe() the program makes (and only those)."""
    import multiprocessing
    original_pipe = context.BaseContext.Pipe

    def Pipe(self, duplex=True):
        a, b = original_pipe(self, duplex)
        channel = naming.new_name("Pipe")
        for end, conn in enumerate((a, b)):
            setattr(conn, naming.CHANNEL, channel)
            setattr(conn, _END, end)
        return a, b

    context.BaseContext.Pipe = Pipe
    # `from multiprocessing import Pipe` is a method bound when the package was imported.
    multiprocessing.Pipe = context._default_context.Pipe


def patch_connections(connection) -> None:
    """Patch the module ``multiprocessing.connection``."""
    from multiprocessing import reduction
    Base = connection._ConnectionBase
    dumps, loads = reduction.ForkingPickler.dumps, reduction.ForkingPickler.loads

    def send(self, obj):
        channel = getattr(self, naming.CHANNEL, None)
        if channel is None or budget.is_paused():
            return original_send(self, obj)
        self._check_closed()
        self._check_writable()
        t = time.time()
        if budget.individual():
            msg = budget.new_msg()
            data = dumps(envelope.Tagged(msg, obj))
            self._send_bytes(data)
            budget.emit(protocol.PIPE_SEND, channel, msg, envelope.own_size(len(data), msg),
                        short_repr(obj), t=t, end=getattr(self, _END))
        else:
            data = dumps(obj)
            self._send_bytes(data)
            budget.count(protocol.PIPE_SEND, channel, len(data))

    def recv(self):
        channel = getattr(self, naming.CHANNEL, None)
        if channel is None:
            return original_recv(self)
        self._check_closed()
        self._check_readable()
        buf = self._recv_bytes().getbuffer()
        size = len(buf)
        msg, obj = envelope.receive(lambda: loads(buf))
        if not budget.is_paused():
            if msg is not None:
                budget.emit(protocol.PIPE_RECV, channel, msg, envelope.own_size(size, msg),
                            short_repr(obj), end=getattr(self, _END))
            else:   # its send was summarised (or untraced): so is the recv
                budget.count(protocol.PIPE_RECV, channel, size)
        return obj

    original_send, original_recv = Base.send, Base.recv
    Base.send, Base.recv = send, recv

    original_reduce = reduction.ForkingPickler._extra_reducers.get(connection.Connection)
    if original_reduce is not None:
        def reduce_connection(conn):
            rebuild, args = original_reduce(conn)
            channel = getattr(conn, naming.CHANNEL, None)
            if channel is None:
                return rebuild, args
            return _rebuild_connection, (rebuild, args, channel, getattr(conn, _END))
        reduction.register(connection.Connection, reduce_connection)


def _rebuild_connection(rebuild, args, channel, end):
    conn = rebuild(*args)
    setattr(conn, naming.CHANNEL, channel)
    setattr(conn, _END, end)
    return conn
