"""§12: Pool.map with a lambda or a local function: the function cannot be pickled."""
from multiprocessing import Pool


def square(n):
    return n * n


square_lambda = lambda n: n * n  # noqa: E731  (what pool.map(lambda n: n * n, ...) passes)


def main(ctx, fixed=False, items=5, workers=2, start_method="fork"):
    numbers = list(range(1, items + 1))

    def cube(n):  # defined inside main: pickle cannot name it from another process
        return n * n * n

    tries = [square] if fixed else [square_lambda, cube]
    errors = []
    result = None
    with Pool(workers) as pool:
        for function in tries:
            try:
                result = pool.map(function, numbers)
            except Exception as exc:  # what the class would see as a traceback
                first = str(exc).splitlines()[0] if str(exc) else ""
                errors.append(f"{type(exc).__name__}: {first}")
                print(f"pool.map({function.__qualname__}, ...) raised {errors[-1]}")
    if result is not None:
        print(result)

    error = errors[0] if errors else None
    ctx.finding("error", error,
                f"pool.map() with a lambda raised {errors[0]}; with the function defined "
                f"inside main it raised {errors[1]}."
                if len(errors) == 2 else
                f"pool.map() with the module-level square() returned {len(result)} results "
                f"from {workers} workers: a worker finds square by its name in this module.",
                headline=True)
    return result


from mpdash.lessons import Lesson, Param, start_method_param  # noqa: E402

LESSON = Lesson(
    id="pickling", title="What cannot be pickled", section="12",
    section_title="When it goes wrong", order=3,
    summary="Pool.map with a lambda or a local function: PicklingError, nothing runs.",
    explanation=(
        "Everything sent to a worker process is pickled, and pickle sends a function by "
        "reference, not as code: its module and its name, for the worker to import and look "
        "up. A lambda has no name to look up, and a function defined inside another function "
        "only exists while that function runs, so pickling either fails in the parent before "
        "any worker sees the task: the Pool's workers start and stay idle, and map() raises "
        "the error from pickle. This happens under fork too, although a forked worker already "
        "has a copy of the function in its memory, because the tasks go through a pipe all the "
        "same. The fix is a function at the top level of a module (functools.partial(square, "
        "...) of one also pickles), which is why the tutorial's workers are all top-level."
    ),
    predict="pool.map(lambda n: n * n, [1, 2, 3, 4, 5]): what comes back?",
    main=main,
    params=(
        Param("fixed", "bool", False, help="map a module-level function instead of a lambda "
                                           "and a local function (the documented fix)"),
        Param("items", "int", 5, min=1, max=10000, help="numbers to map: 1..items"),
        Param("workers", "int", 2, min=1, max=8, help="processes in the pool"),
        start_method_param(),
    ),
)
