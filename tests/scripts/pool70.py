"""What Pool() gives on a 70-core server: 70 workers. Each sleeps through one task, so the
machine running the test is not loaded: only the number of processes is large."""
import time
from multiprocessing import Pool


def nap(i):
    time.sleep(0.3)
    return i


if __name__ == "__main__":
    with Pool(70) as pool:
        done = pool.map(nap, range(70), chunksize=1)
    print(f"{len(done)} tasks done by 70 workers")
