# The §7 pool example as a package, for `python -m tutorial_pkg` (spawn: children re-import it).
import multiprocessing
from multiprocessing import Pool

from tutorial_pkg.work import square

if __name__ == "__main__":
    multiprocessing.set_start_method("spawn")
    with Pool(2) as p:
        results = p.map(square, [1, 2, 3, 4, 5])
    print(results)  # [1, 4, 9, 16, 25]
