"""A fork taken while another thread holds a lock: the child's copy of the lock stays held.

The holder thread releases the parent's lock eventually, but the child has only the copy taken
at fork time, with no thread to release it: ``take_lock`` waits for ever.
"""
import multiprocessing
import threading
import time
import warnings

lock = threading.Lock()
holding = threading.Event()


def hold():
    with lock:
        holding.set()
        time.sleep(60)


def take_lock():
    with lock:
        print("never printed")


if __name__ == "__main__":
    warnings.simplefilter("ignore", DeprecationWarning)   # 3.12+: fork with threads running
    threading.Thread(target=hold, name="holder", daemon=True).start()
    holding.wait()
    child = multiprocessing.get_context("fork").Process(target=take_lock, name="taker")
    child.start()
    child.join()
