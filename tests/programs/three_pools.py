"""One of each pool tracing knows: Pool, ThreadPool and ProcessPoolExecutor (issue 14)."""
import time
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import Pool
from multiprocessing.pool import ThreadPool


def work(n):
    time.sleep(0.3 if n == 5 else 0.01)   # one slow task, with an argument to find it by
    return n * n


if __name__ == "__main__":
    with Pool(3) as pool:
        print(sum(pool.map(work, range(12), chunksize=1)))
    with ThreadPool(2) as pool:
        print(sum(pool.map(work, range(8), chunksize=1)))
    with ProcessPoolExecutor(2) as executor:
        print(sum(executor.map(work, range(6))))
