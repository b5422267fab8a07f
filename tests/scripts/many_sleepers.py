"""Starts N sleeping processes (default 20) and waits for them: past a small --max-procs."""
import sys
import time
from multiprocessing import Process

if __name__ == "__main__":
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 20
    procs = [Process(target=time.sleep, args=(30,)) for _ in range(n)]
    for p in procs:
        p.start()
    for p in procs:
        p.join()
