"""A fork bomb with a bound (so a broken test cannot take the machine down): every process
forks children until it has forked WIDTH or reached DEPTH, then sleeps. Fork failures (the
kernel's pids.max) are counted, not fatal."""
import os
import sys
import time

WIDTH, DEPTH = int(sys.argv[1]), int(sys.argv[2])
level = 0
failed = 0
i = 0
while i < WIDTH and level < DEPTH:
    try:
        pid = os.fork()
    except OSError:
        failed += 1
        time.sleep(0.01)
        i += 1
        continue
    if pid == 0:
        level += 1
        i = 0
        continue
    i += 1
if failed:
    print(f"fork refused {failed} times at level {level}", flush=True)
time.sleep(60)
