"""Run a script as ``__main__`` under a chosen start method, without editing it:
``python _start_method.py spawn|fork|forkserver SCRIPT [ARGS...]``.

This is what a user's program does when it calls ``set_start_method`` first; runpy makes the
script the ``__main__`` module, so spawn and forkserver children import it as ``__mp_main__``.
"""
import multiprocessing
import runpy
import sys

if __name__ == "__main__":
    method, script = sys.argv[1], sys.argv[2]
    multiprocessing.set_start_method(method)
    sys.argv = sys.argv[2:]
    runpy.run_path(script, run_name="__main__")
