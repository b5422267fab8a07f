"""A main that starts busy pool workers and then dies by a signal (a real crash)."""
import multiprocessing
import os
import signal
import sys
import time


def spin(n):
    end = time.monotonic() + 30
    while time.monotonic() < end:
        pass
    return n


if __name__ == "__main__":
    ctx = multiprocessing.get_context(sys.argv[1] if len(sys.argv) > 1 else "fork")
    pool = ctx.Pool(3)
    pool.map_async(spin, range(3))
    time.sleep(1.0)
    print("crashing", flush=True)
    os.kill(os.getpid(), signal.SIGSEGV)
