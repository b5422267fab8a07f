"""Holds MB mebibytes (every page touched) in each of N processes (default 80 MiB x 3)."""
import sys
import time
from multiprocessing import Process


def hold(mb):
    block = bytearray(mb * 2**20)
    for i in range(0, len(block), 4096):
        block[i] = 1
    time.sleep(30)


if __name__ == "__main__":
    mb = int(sys.argv[1]) if len(sys.argv) > 1 else 80
    n = int(sys.argv[2]) if len(sys.argv) > 2 else 3
    procs = [Process(target=hold, args=(mb,)) for _ in range(n)]
    for p in procs:
        p.start()
    for p in procs:
        p.join()
