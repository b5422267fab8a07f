"""mpdash: watch Python multiprocessing happen in real operating-system processes.

The engine (lessons, probe, harness, runs, sampler, state) imports nothing from Flask; the web
layer lives in ``mpdash.web``. Platform: Linux; the server needs Python >= 3.11, what runs
inside a run (``mpdash.inrun``, ``protocol``, ``harness``, the lessons) any CPython 3.10-3.14.
"""
__version__ = "0.1.0"
