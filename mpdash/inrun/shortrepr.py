"""The short text of an object that an event shows (at most ``protocol.MAX_DETAIL`` characters)."""
from __future__ import annotations

import itertools
import reprlib

from mpdash.protocol import MAX_DETAIL


class _ShortRepr(reprlib.Repr):
    """Builds no more text than an event can show: a full repr of a big list put on a queue
    would cost the program as much time and memory as pickling it again."""

    def __init__(self):
        super().__init__()
        self.maxlevel = 4
        self.maxtuple = self.maxlist = self.maxarray = self.maxdict = 64
        self.maxset = self.maxfrozenset = self.maxdeque = 64
        self.maxstring = self.maxlong = self.maxother = MAX_DETAIL

    def repr_bytes(self, value, level):
        return repr(value[:MAX_DETAIL]) + ("…" if len(value) > MAX_DETAIL else "")

    repr_bytearray = repr_bytes

    def repr_dict(self, value, level):
        # reprlib sorts keys; the program would print them in insertion order
        if not value:
            return "{}"
        if level <= 0:
            return "{...}"
        items = [f"{self.repr1(k, level - 1)}: {self.repr1(v, level - 1)}"
                 for k, v in itertools.islice(value.items(), self.maxdict)]
        return "{" + ", ".join(items) + (", ..." if len(value) > self.maxdict else "") + "}"


_short = _ShortRepr()


def short_repr(value) -> str:
    try:
        text = _short.repr(value)
    except Exception:
        text = f"<{type(value).__name__}>"
    return text if len(text) <= MAX_DETAIL else text[: MAX_DETAIL - 1] + "…"


def json_value(value):
    """``value`` itself when JSON can carry it exactly, else its short text."""
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float):
        return value if value == value and value not in (float("inf"), float("-inf")) else repr(value)
    return short_repr(value)
