"""A main whose child starts `sleep` and dies at once: the sleep is orphaned (re-parented to
the server, a subreaper). argv: [setsid] [hold SECONDS]. Prints "orphan <pid>"."""
import multiprocessing
import os
import subprocess
import sys
import time


def make_orphan(setsid):
    proc = subprocess.Popen(["sleep", "60"], start_new_session=setsid)
    print(f"orphan {proc.pid}", flush=True)
    os._exit(0)   # no wait: the sleep outlives its parent


if __name__ == "__main__":
    setsid = "setsid" in sys.argv
    hold = float(sys.argv[sys.argv.index("hold") + 1]) if "hold" in sys.argv else 0.0
    child = multiprocessing.get_context("fork").Process(target=make_orphan, args=(setsid,))
    child.start()
    child.join()
    time.sleep(hold)
