"""Run by tests/test_inrun_pythons.py with each CPython found: ``python inrun_smoke.py SOCKET``.

Imports every module of the in-run side, proves that outside a run installing is a no-op, then
installs it on the socket the test opened and puts/gets one item on a Queue in this process.
"""
import importlib
import os
import pkgutil
import sys

from mpdash import protocol
import mpdash.inrun

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

# Syntax of every file of the in-run side, as this interpreter reads it.
for folder in ("mpdash/inrun", "mpdash/_boot"):
    for name in sorted(os.listdir(os.path.join(ROOT, folder))):
        if name.endswith(".py"):
            path = os.path.join(ROOT, folder, name)
            with open(path, encoding="utf-8") as f:
                compile(f.read(), path, "exec")
modules = sorted(m.name for m in pkgutil.iter_modules(mpdash.inrun.__path__))
for name in modules:
    importlib.import_module(f"mpdash.inrun.{name}")
import mpdash.harness  # noqa: E402,F401

from mpdash.inrun import channel, lifecycle  # noqa: E402
import multiprocessing.process  # noqa: E402

# Not in a run: nothing is patched, nothing is sent.
assert protocol.ENV_EVENTS not in os.environ
start, stdout = multiprocessing.process.BaseProcess.start, sys.stdout
assert lifecycle.install() is False
channel.send(protocol.OUT, s=protocol.STDOUT, x="not in a run")
assert not channel.enabled()
assert multiprocessing.process.BaseProcess.start is start and sys.stdout is stdout

# In a run whose server is our parent (the test).
os.environ[protocol.ENV_EVENTS] = sys.argv[1]
os.environ[protocol.ENV_SERVER_PID] = str(os.getppid())
os.environ[protocol.ENV_RUN_MAIN] = "1"
assert lifecycle.install() is True
assert multiprocessing.process.BaseProcess.start is not start

import multiprocessing  # noqa: E402

q = multiprocessing.Queue()
q.put({"n": 5})
assert q.get(timeout=10) == {"n": 5}
q.close()
q.join_thread()
print("modules", " ".join(modules))
