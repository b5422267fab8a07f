"""Runs inside benchmarks/.venv (Glances from PyPI): drives Glances' own process engine
in-process, one full refresh per cycle, the way its standalone mode does each refresh, and
prints per-cycle CPU time and the pids it refreshed as JSON.

Why not ``glances -t 1``: its process list is refreshed only every other cycle, so timing the
program from outside would halve its per-refresh cost. Calling ``glances_processes.update()``
forces one real refresh of every process per cycle (and excludes its UI and other plugins,
which only flatters Glances).
"""
import json
import sys
import time

from glances.main import GlancesMain
from glances.processes import glances_processes


def main():
    cycles, period = int(sys.argv[1]), float(sys.argv[2])
    sys.argv = ["glances", "--disable-webui"]
    args = GlancesMain().get_args()
    glances_processes.set_args(args)
    glances_processes.max_processes = None
    glances_processes.update()       # first refresh fills caches (cmdline, username): not timed
    out = []
    for _ in range(cycles):
        time.sleep(period)
        t0 = time.thread_time()
        plist = glances_processes.update()
        out.append({"cpu": time.thread_time() - t0, "n": len(plist),
                    "pids": [p["pid"] for p in plist]})
    print(json.dumps(out))


if __name__ == "__main__":
    main()
