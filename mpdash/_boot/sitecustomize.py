"""Loaded by every Python process of an mpdash run (this folder is on the run's PYTHONPATH).

It hooks the process into its run (see mpdash/inrun/lifecycle.py) before any user or lesson
code runs, so spawn and forkserver children are traced like forked ones, with no edit of the
program. Outside a run only the protocol is imported: the in-run side costs tens of ms.
"""
import os

try:
    from mpdash import protocol

    if os.environ.get(protocol.ENV_EVENTS):
        from mpdash.inrun import lifecycle

        lifecycle.install()
except Exception as exc:  # never stop the user's program because the probe failed
    import sys

    sys.__stderr__.write(f"mpdash: probe not installed: {exc!r}\n")
