"""``multiprocessing.Manager`` proxies: each method call → ``manager_call``.

Every proxy method (``d[k] = v``, ``lst.append(x)``, ``q.get()``, ``ev.set()`` ...) goes through
``BaseProxy._callmethod``: one request to the manager process and one answer. The event is sent
by the process that called, once the answer is in (so a blocking ``q.get()`` shows when it
returned), with ``t`` the moment of the call and ``seconds`` the round trip.

The channel is the proxy's referent, named from its token (``dict-7f3a9c2b10``): a proxy passed
to another process is a new proxy object there, but it holds the same token, so both processes
name the same channel.
"""
from __future__ import annotations

import time

from mpdash import protocol
from mpdash.inrun import budget
from mpdash.inrun.shortrepr import short_repr


def channel_of(proxy) -> str:
    token = proxy._token
    return f"{token.typeid}-{token.id}"


def patch(managers) -> None:
    """Patch the module ``multiprocessing.managers``."""
    original = managers.BaseProxy._callmethod

    def _callmethod(self, methodname, args=(), kwds={}):   # noqa: B006 (the original's default)
        if budget.is_paused():
            return original(self, methodname, args, kwds)
        t, started = time.time(), time.perf_counter()
        ok = False
        try:
            result = original(self, methodname, args, kwds)
            ok = True
            return result
        finally:
            try:
                chan = channel_of(self)
            except AttributeError:   # a proxy not set up yet: nothing to name
                chan = None
            if chan is not None:
                shown = ", ".join([short_repr(a) for a in args]
                                  + [f"{k}={short_repr(v)}" for k, v in kwds.items()])
                budget.trace(protocol.MANAGER_CALL, chan, None, None, methodname, t=t,
                             args=shown[:protocol.MAX_DETAIL], ok=ok,
                             seconds=round(time.perf_counter() - started, 6))

    managers.BaseProxy._callmethod = _callmethod
