"""mpdash: watch Python multiprocessing happen in real operating-system processes.

The engine (lessons, probe, harness, runs, sampler, state) imports nothing from Flask; the web
layer lives in ``mpdash.web``. Platform: Linux, Python >= 3.11.
"""
__version__ = "0.1.0"
