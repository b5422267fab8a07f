"""Which process of the run this is: ``main`` (the program the server started), ``worker``
(a process multiprocessing, concurrent.futures or loky started), ``child`` (any other: a raw
``os.fork()``, a Python started by ``subprocess``) or ``helper`` (multiprocessing's resource
tracker or forkserver). Set by ``lifecycle``; read by it and by channel naming."""
from __future__ import annotations

MAIN, WORKER, CHILD, HELPER = "main", "worker", "child", "helper"


class _Role:
    __slots__ = ("name", "helper")

    def __init__(self):
        self.name = WORKER
        self.helper: str | None = None   # "resource_tracker" or "forkserver" for a helper


current = _Role()


def get() -> str:
    return current.name


def is_main() -> bool:
    return current.name == MAIN
