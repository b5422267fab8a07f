"""The libraries people use, in one ordinary program (watched by tests/test_anyprog.py).

joblib.Parallel (loky) squares 8 numbers on 2 workers; a Manager's dict and list are written
by a child; a SharedMemory block is created here, attached and written by a child, unlinked;
a SimpleQueue carries 3 messages from a child.
"""
import multiprocessing as mp
from multiprocessing import shared_memory

from joblib import Parallel, delayed


def square(x):
    return x * x


def use_proxies(d, lst):
    d["answer"] = 42
    lst.append("from child")


def write_block(name):
    block = shared_memory.SharedMemory(name=name)
    block.buf[:5] = b"hello"
    block.close()


def send_three(q):
    for i in range(3):
        q.put(("item", i))


if __name__ == "__main__":
    print("joblib:", Parallel(n_jobs=2)(delayed(square)(i) for i in range(8)), flush=True)

    with mp.Manager() as manager:
        d, lst = manager.dict(), manager.list()
        p = mp.Process(target=use_proxies, args=(d, lst))
        p.start()
        p.join()
        print("manager:", dict(d), list(lst), flush=True)

    block = shared_memory.SharedMemory(create=True, size=4096)
    p = mp.Process(target=write_block, args=(block.name,))
    p.start()
    p.join()
    print("shared memory:", bytes(block.buf[:5]), flush=True)
    block.close()
    block.unlink()

    q = mp.SimpleQueue()
    p = mp.Process(target=send_three, args=(q,))
    p.start()
    print("simple queue:", [q.get() for _ in range(3)], flush=True)
    p.join()
