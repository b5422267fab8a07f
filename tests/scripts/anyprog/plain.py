"""A program that uses none of the traced libraries: which of them did it pay for (import)?

(``subprocess`` is not among them: the in-run side patches multiprocessing's process start at
install, and ``multiprocessing.util`` imports ``subprocess`` itself.)"""
import json
import sys

LIBRARIES = ("multiprocessing.managers", "multiprocessing.shared_memory",
             "multiprocessing.pool", "concurrent.futures.process", "joblib", "loky")
print(json.dumps(sorted(m for m in sys.modules if m.startswith(LIBRARIES))), flush=True)
