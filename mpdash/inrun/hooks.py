"""The one place that says what to reset in a forked child.

A fork copies the parent's state, including locks another thread may hold and buffers that
belong to the parent. Each module that keeps such state registers its reset here, at import;
``lifecycle`` runs them all (in registration order) first thing in every forked child, before
the child says hello. Kept free of imports so that any in-run module may register.
"""
from __future__ import annotations

import sys

_after_fork_in_child: list = []


def after_fork_in_child(reset):
    """Register ``reset()`` to run in every forked child; returns it (usable as a decorator)."""
    if reset not in _after_fork_in_child:
        _after_fork_in_child.append(reset)
    return reset


def run_after_fork_in_child() -> None:
    for reset in list(_after_fork_in_child):
        try:
            reset()
        except Exception as exc:   # one failed reset must not stop the others, nor the child
            sys.__stderr__.write(f"mpdash: after-fork reset {reset!r} failed: {exc!r}\n")
