"""The in-run side of mpdash: everything that executes inside the processes of a run.

Standard library only, on every CPython 3.10-3.14. ``mpdash/_boot/sitecustomize.py`` calls
``lifecycle.install()`` in every Python process of a run. One job per module:

- ``hooks``: what to reset in a forked child (the one after-fork path);
- ``role``: which process of the run this is (main, worker, child, helper);
- ``channel``: the connection to the server, ``send()``;
- ``capture``: stdout/stderr as one message per printed line;
- ``lifecycle``: THE patch of multiprocessing's process start/bootstrap and Popen, the parent's
  death signal, ``install()``;
- ``shortrepr``: the short text of an object an event shows;
- ``budget``: the per-process event rate budget, ``traffic`` summaries, pausing;
- ``naming``: channel names ("Queue-1") and how they travel with pickled objects;
- ``envelope``: the tag that pairs a get with its put;
- ``reaps``: children ``subprocess`` starts, and the exit codes this process collects
  (``os.wait*``, ``subprocess``);
- ``trace_queues``, ``trace_pipes``, ``trace_shared``, ``trace_pools``, ``trace_loky``,
  ``trace_managers``, ``trace_shm``: one traced family each;
- ``importhook``: patches each traced module when it is first imported;
- ``stacks``: every thread's stack dumped (faulthandler) when the server asks, even from C.

This file imports nothing, so importing any one module never pulls in the others.
"""
