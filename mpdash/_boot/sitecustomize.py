"""Loaded by every Python process of an mpdash run: this folder is the run's only addition to
``PYTHONPATH`` (see mpdash/engine/launch.py), so it must hold nothing but this file.

It hooks the process into its run (see mpdash/inrun/lifecycle.py) before any user or lesson
code runs, so spawn and forkserver children are traced like forked ones, with no edit of the
program. Outside a run it imports nothing at all.

Why mpdash is not simply put on the path: the folder that holds the server's ``mpdash`` (the
checkout, or the server's site-packages when installed) holds everything else the server has,
and on another interpreter's path it would shadow the program's own packages (a venv's numpy by
the server's, built for another Python). So only the package itself is loaded, from the folder
``MPDASH_PACKAGE`` names, under its own name; nothing else of that folder becomes importable.
The in-run side it then imports is standard library only, on every CPython 3.10-3.14.
"""
import os
import sys

# Literals on purpose: mpdash.protocol (ENV_EVENTS, ENV_PACKAGE) cannot be imported before the
# package is loaded; tests/test_protocol.py proves these equal the protocol's.
ENV_EVENTS, ENV_PACKAGE = "MPDASH_EVENTS", "MPDASH_PACKAGE"


def _load_package(folder: str) -> None:
    """Import the server's mpdash package from ``folder`` without adding its parent to the path."""
    if "mpdash" in sys.modules:
        return
    import importlib.util

    spec = importlib.util.spec_from_file_location(
        "mpdash", os.path.join(folder, "__init__.py"), submodule_search_locations=[folder])
    module = importlib.util.module_from_spec(spec)
    sys.modules["mpdash"] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules["mpdash"]
        raise


def _install() -> None:
    if not os.environ.get(ENV_EVENTS):
        return
    folder = os.environ.get(ENV_PACKAGE)
    if folder:
        _load_package(folder)
    from mpdash.inrun import lifecycle

    lifecycle.install()


def _chain() -> None:
    """Run the ``sitecustomize`` this file shadows (Debian's python3 has one, so may a venv):
    the program must start as it would without mpdash."""
    here = os.path.dirname(os.path.abspath(__file__))
    for entry in sys.path:
        if not entry or os.path.abspath(entry) == here:
            continue
        path = os.path.join(entry, "sitecustomize.py")
        if os.path.isfile(path):
            import importlib.util

            spec = importlib.util.spec_from_file_location("_mpdash_shadowed_sitecustomize", path)
            spec.loader.exec_module(importlib.util.module_from_spec(spec))
            return


try:
    _install()
except Exception as exc:  # never stop the user's program because the probe failed
    sys.__stderr__.write(f"mpdash: probe not installed: {exc!r}\n")
try:
    _chain()
except Exception as exc:  # the shadowed one failing would have printed this much without us
    sys.__stderr__.write(f"Error in sitecustomize; set PYTHONVERBOSE for traceback:\n{exc!r}\n")
