"""Allocates MB mebibytes in N worker processes (touching every page), then waits."""
import multiprocessing
import sys
import time


def hold(mb):
    block = bytearray(mb * 2**20)
    for i in range(0, len(block), 4096):
        block[i] = 1
    time.sleep(60)


if __name__ == "__main__":
    mb, n = int(sys.argv[1]), int(sys.argv[2])
    procs = [multiprocessing.Process(target=hold, args=(mb,)) for _ in range(n)]
    for p in procs:
        p.start()
    for p in procs:
        p.join()
