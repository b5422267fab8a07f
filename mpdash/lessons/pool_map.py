"""§7: a Pool of worker processes maps a function over a list."""
import time
from functools import partial
from multiprocessing import Pool


def square(n, spin=0.0):
    deadline = time.perf_counter() + spin
    while time.perf_counter() < deadline:  # CPU-bound work, so the cores visibly fill up
        pass
    return n * n


def main(ctx, workers=3, items=5, spin=0.0, start_method="fork"):
    numbers = list(range(1, items + 1))
    with Pool(workers) as p:
        results = p.map(partial(square, spin=spin), numbers)
    print(results)
    return results


from mpdash.lessons import Lesson, Param, start_method_param  # noqa: E402

LESSON = Lesson(
    id="pool-map", title="Pool.map", section="7", section_title="Process pools", order=1,
    summary="Pool(3).map(square, [1..5]): a batch spread over worker processes.",
    explanation=(
        "A Pool starts a fixed number of worker processes once and reuses them for every task. "
        "map() cuts the input into chunks, sends each chunk to an idle worker through a queue, "
        "and returns the results in input order, whichever worker finished first. Leaving the "
        "with-block calls terminate(): the workers are ended with SIGTERM, which is how a Pool "
        "normally ends, not a crash."
    ),
    predict="With 3 workers and 5 items, does every worker get some of the work?",
    main=main,
    params=(
        Param("workers", "int", 3, min=1, max=16, help="processes in the pool"),
        Param("items", "int", 5, min=1, max=10000, help="numbers to square: 1..items"),
        Param("spin", "float", 0.0, min=0.0, max=5.0, unit="s",
              help="CPU-bound work per item, so the run lasts long enough to watch"),
        start_method_param(),
    ),
)
