"""§9: one worker process crashes; its siblings and the main carry on."""
import ctypes
import os
import resource
import time
from multiprocessing import Process, Queue


def crash(how):
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))  # no core file left on disk
    if how == "exception":
        raise RuntimeError("something went wrong in this worker")
    if how == "exit":
        os._exit(3)
    if how == "abort":
        os.abort()
    if how == "segfault":
        ctypes.string_at(0)  # reads address 0: the kernel sends SIGSEGV


def work(n, results, crashes, how, seconds):
    time.sleep(seconds / 2)
    if crashes:
        crash(how)
    time.sleep(seconds / 2)
    results.put((n, n * n))


def main(ctx, workers=4, crash="exception", crasher=2, seconds=0.5, start_method="fork"):
    results = Queue()
    procs = [Process(target=work, args=(n, results, n == crasher, crash, seconds))
             for n in range(1, workers + 1)]
    for p in procs:
        p.start()
    for p in procs:
        p.join()

    survivors = [p for n, p in enumerate(procs, 1) if n != crasher]
    got = dict(results.get(timeout=5) for _ in survivors)
    for n, p in enumerate(procs, 1):
        print(f"worker {n} (pid {p.pid}): exit code {p.exitcode}")
    print(f"results: {got}")

    crashed = procs[crasher - 1].exitcode
    ok = all(p.exitcode == 0 for p in survivors) and len(got) == len(survivors)
    ctx.finding("crashed_exitcode", crashed,
                f"Worker {crasher} ended with exit code {crashed} ({crash}).")
    ctx.finding("survivors_ok", ok,
                f"{sum(p.exitcode == 0 for p in survivors)} of {len(survivors)} other workers "
                f"exited with 0 and {len(got)} results came back; the main went on.",
                headline=True)
    return {"crashed_exitcode": crashed, "results": sorted(got.values())}


from mpdash.lessons import Lesson, Param, start_method_param  # noqa: E402

LESSON = Lesson(
    id="crash-isolation", title="Crash isolation", section="9",
    section_title="Advantages of multiprocessing", order=1,
    summary="One of four worker processes crashes; the others finish and report.",
    explanation=(
        "Every worker is a separate process with its own memory, so whatever kills one of them "
        "cannot corrupt the others. An uncaught exception ends the child with exit code 1 and "
        "its traceback on its own stderr; os._exit(3) ends it with 3; os.abort() and a "
        "segmentation fault end it by a signal, which multiprocessing reports as a negative "
        "code (-6, -11). The lesson uses plain Process objects on purpose: in a Pool, a worker "
        "that dies abruptly is replaced but its task is lost, and map() waits for it forever."
    ),
    predict="One of four workers crashes. How many results come back, and what exit code does "
            "the crashed one get?",
    main=main,
    params=(
        Param("workers", "int", 4, min=2, max=8, help="worker processes"),
        Param("crash", "choice", "exception", choices=("exception", "exit", "abort", "segfault"),
              help="how the crashing worker dies: exception → 1, os._exit(3) → 3, "
                   "os.abort() → -6, segfault → -11"),
        Param("crasher", "int", 2, min=1, max=8, help="which worker crashes (1-based)"),
        Param("seconds", "float", 0.5, min=0.0, max=5.0, unit="s", help="work per worker"),
        start_method_param(),
    ),
)
