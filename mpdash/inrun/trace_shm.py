"""``multiprocessing.shared_memory``: a block created, attached, unlinked → ``shm_create``,
``shm_attach``, ``shm_unlink``, each with the block's ``name`` (also its channel) and ``size``.

``ShareableList`` is built on ``SharedMemory``, so its blocks are traced too. Reads and writes
of a block are plain memory accesses: nothing can see them, and nothing is sent for them.
A busy process counts them instead, without bytes: a block's size is not traffic.
"""
from __future__ import annotations

from mpdash import protocol
from mpdash.inrun import budget


def _detail(verb: str, block) -> str:
    return f"{verb} {block.name} ({block.size} B)"


def patch(shared_memory) -> None:
    """Patch the module ``multiprocessing.shared_memory``."""
    SharedMemory = shared_memory.SharedMemory
    original_init, original_unlink = SharedMemory.__init__, SharedMemory.unlink

    def __init__(self, *args, **kwargs):
        original_init(self, *args, **kwargs)
        if budget.is_paused():
            return
        # SharedMemory(name=None, create=False, size=0, ...): create is the second parameter
        create = kwargs.get("create", args[1] if len(args) > 1 else False)
        individual = budget.individual()
        if create and individual:
            budget.emit(protocol.SHM_CREATE, self.name, None, self.size,
                        _detail("created", self), name=self.name)
        elif create:
            budget.count(protocol.SHM_CREATE, self.name)
        elif individual:
            budget.emit(protocol.SHM_ATTACH, self.name, None, self.size,
                        _detail("attached", self), name=self.name)
        else:
            budget.count(protocol.SHM_ATTACH, self.name)

    def unlink(self):
        original_unlink(self)
        if budget.is_paused():
            return
        if budget.individual():
            budget.emit(protocol.SHM_UNLINK, self.name, None, self.size,
                        _detail("unlinked", self), name=self.name)
        else:
            budget.count(protocol.SHM_UNLINK, self.name)

    SharedMemory.__init__, SharedMemory.unlink = __init__, unlink
