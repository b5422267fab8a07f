"""Installs tracing: patches each traced multiprocessing module right after its first import.

Not at start-up: importing them costs milliseconds, and a process that never uses a Pool should
not pay for importing one. A module already imported is patched at once.
"""
from __future__ import annotations

import importlib
import importlib.abc
import sys

from mpdash.inrun import trace_pipes

# module name -> (the in-run module holding its patch, the patch's name). Named, not imported:
# the patching module itself is loaded only when its target is, so a program that never
# imports joblib or a Manager does not load their tracing either.
PATCHES = {
    "multiprocessing.queues": ("trace_queues", "patch"),
    "multiprocessing.connection": ("trace_pipes", "patch_connections"),
    "multiprocessing.sharedctypes": ("trace_shared", "patch"),
    "multiprocessing.pool": ("trace_pools", "patch_pool"),
    "concurrent.futures.process": ("trace_pools", "patch_executor"),
    "multiprocessing.managers": ("trace_managers", "patch"),
    "multiprocessing.shared_memory": ("trace_shm", "patch"),
    "subprocess": ("reaps", "patch_subprocess"),
}
for _prefix in ("joblib.externals.loky", "loky"):   # joblib's vendored copy, and loky itself
    PATCHES[f"{_prefix}.backend.queues"] = ("trace_loky", "patch_queues")
    PATCHES[f"{_prefix}.process_executor"] = ("trace_loky", "patch_executor")


class _PatchOnImport(importlib.abc.MetaPathFinder):
    """Runs a patch right after a module's first import."""

    def __init__(self, patches: dict):
        self.patches = patches

    def find_spec(self, name, path=None, target=None):
        if name not in self.patches:
            return None
        for finder in sys.meta_path:
            if finder is self or not hasattr(finder, "find_spec"):
                continue
            spec = finder.find_spec(name, path, target)
            if spec is not None and spec.loader is not None:
                break
        else:
            return None
        patch, loader = self.patches.pop(name), spec.loader
        original_exec = loader.exec_module

        def exec_module(module):
            original_exec(module)
            apply(patch, module)
        spec.loader = _Loader(loader, exec_module)
        return spec


class _Loader(importlib.abc.Loader):
    def __init__(self, loader, exec_module):
        self._loader, self._exec = loader, exec_module

    def create_module(self, spec):
        return self._loader.create_module(spec)

    def exec_module(self, module):
        self._exec(module)

    def __getattr__(self, name):
        return getattr(self._loader, name)


def apply(patch, module) -> None:
    """Apply ``patch`` (a function, or its (module, name) in PATCHES) to ``module``."""
    try:
        if isinstance(patch, tuple):
            owner, name = patch
            patch = getattr(importlib.import_module(f"mpdash.inrun.{owner}"), name)
        patch(module)
    except Exception as exc:   # tracing must never break the program it watches
        sys.__stderr__.write(f"mpdash: tracing of {module.__name__} not installed: {exc!r}\n")


_installed = []


def install_tracing() -> None:
    """Patch this process's multiprocessing for tracing; idempotent."""
    if _installed:
        return
    _installed.append(True)
    from multiprocessing import context
    apply(trace_pipes.patch_pipe, context)
    patches = dict(PATCHES)
    for name in [n for n in patches if n in sys.modules]:
        apply(patches.pop(name), sys.modules[name])
    if patches:
        sys.meta_path.insert(0, _PatchOnImport(patches))
