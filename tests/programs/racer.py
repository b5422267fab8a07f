"""Kills the parent of freshly started children the instant start() returns, before they can
have run a line of their own (the PR_SET_PDEATHSIG race), then exits.

spawn: the children's parent is this main, which exits at once.
forkserver: their parent is the forkserver, SIGKILLed at once. (The main exiting is not enough
there: every forkserver child holds the forkserver's "alive" pipe, so forkserver and children
keep each other alive; the server's leftover cleanup or its watchdog ends those.)
"""
import multiprocessing
import os
import signal
import sys
import time


def sleeper():
    time.sleep(60)


if __name__ == "__main__":
    method = sys.argv[1]
    ctx = multiprocessing.get_context(method)
    procs = [ctx.Process(target=sleeper) for _ in range(int(sys.argv[2]))]
    for p in procs:
        p.start()
    if method == "forkserver":
        from multiprocessing import forkserver
        os.kill(forkserver._forkserver._forkserver_pid, signal.SIGKILL)
    # Straight to fd 1: under the probe, print() goes to the server's socket.
    os.write(1, ("started " + " ".join(str(p.pid) for p in procs) + "\n").encode())
    os._exit(0)
