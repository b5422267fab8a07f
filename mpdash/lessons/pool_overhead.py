"""§12: a Pool over many tiny tasks, one message each, is slower than a plain loop."""
import os
import time
from multiprocessing import Pool, active_children

STEPS = 500  # work per item: a few tens of microseconds of pure Python


def work(n):
    total = 0
    for i in range(STEPS):
        total += i * n
    return total


def cpu_seconds(processes):
    """CPU time the kernel has charged to these processes so far (user + system)."""
    total = 0
    for p in processes:
        with open(f"/proc/{p.pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        total += int(fields[11]) + int(fields[12])  # utime, stime, in clock ticks
    return total / os.sysconf("SC_CLK_TCK")


def main(ctx, fixed=False, tasks=10000, workers=2, repeats=3, start_method="fork"):
    numbers = list(range(tasks))
    # The pitfall: one item per task, so a message out and a message back for every item.
    # The fix: a few big tasks of chunksize items each, so each message carries real work.
    chunksize = -(-tasks // (4 * workers)) if fixed else 1
    serial = pooled = float("inf")
    with Pool(workers) as pool:
        pool.map(work, range(workers))  # the workers are up: their start-up is not timed
        pool_workers = active_children()
        for _ in range(repeats):  # alternate, keep each side's best: the machine is shared
            cpu_before, started = time.process_time(), time.perf_counter()
            expected = [work(n) for n in numbers]
            seconds = time.perf_counter() - started
            if seconds < serial:
                serial, serial_cores = seconds, (time.process_time() - cpu_before) / seconds

            cpu_before, started = cpu_seconds(pool_workers), time.perf_counter()
            results = pool.map(work, numbers, chunksize)
            seconds = time.perf_counter() - started
            if seconds < pooled:
                pooled, cores = seconds, (cpu_seconds(pool_workers) - cpu_before) / seconds
    if results != expected:
        raise AssertionError("the pool's results differ from the loop's")
    speedup = serial / pooled
    print(f"plain loop {serial:.3f} s, Pool({workers}).map {pooled:.3f} s, "
          f"speedup {speedup:.2f}× ({tasks:,} items, chunksize {chunksize:,})")

    chunks = -(-tasks // chunksize)   # tasks / chunksize, rounded up
    messages = 2 * chunks             # one out with the items, one back with the results
    ctx.finding("tasks", tasks, f"{tasks:,} items of {STEPS} steps each: the loop spent "
                                f"{serial / tasks * 1e6:.1f} µs on one.")
    ctx.finding("chunksize", chunksize,
                f"chunksize {chunksize:,}: {chunks:,} tasks, "
                f"so {messages:,} messages between the main and the workers per map().")
    ctx.finding("serial_s", round(serial, 3), f"The plain loop took {serial:.3f} s "
                                              f"(best of {repeats}).", unit="s")
    ctx.finding("pool_s", round(pooled, 3),
                f"Pool({workers}).map took {pooled:.3f} s (best of {repeats}), "
                f"{pooled / messages * 1e6:,.0f} µs per message.", unit="s")
    ctx.finding("pool_cores", round(cores, 2),
                f"During that map the {workers} workers used {cores:.2f} cores of CPU (the "
                f"kernel's count, their messaging included); the loop had "
                f"{serial_cores:.2f} of one core.", unit="cores")
    ctx.finding("speedup", round(speedup, 2),
                f"Speedup {speedup:.2f}×: the pool of {workers} was "
                + (f"{1 / speedup:.1f}× slower than the plain loop"
                   + (", every item paying for two messages that cost more than its work."
                      if chunksize == 1 else ".") if speedup < 1 else
                   f"faster than the plain loop, its {messages:,} messages a small price "
                   f"next to the work each one carried.")
                + (f" This busy machine gave the workers only {cores / serial_cores:.1f}× the "
                   f"CPU the loop got, and a pool can only win by the cores it gets."
                   if fixed and cores < 1.2 * serial_cores else ""),
                unit="×", headline=True)
    return {"serial_s": round(serial, 3), "pool_s": round(pooled, 3),
            "loop_cores": round(serial_cores, 2), "pool_cores": round(cores, 2)}


from mpdash.lessons import Lesson, Param, start_method_param  # noqa: E402

LESSON = Lesson(
    id="pool-overhead", title="Pool overhead", section="12",
    section_title="When it goes wrong", order=6,
    summary="Pool.map over many tiny tasks, one per message: slower than a plain loop.",
    explanation=(
        "A Pool does not run a function in another process for free: each task is pickled, "
        "written into a pipe, read and unpickled by a worker, and its result travels back the "
        "same way, through the main's own task and result threads. With chunksize 1 every "
        "item pays that price, tens of microseconds, which is more than the work of a small "
        "item, so two cores finish later than one plain loop; the timeline and the message "
        "panel fill with a flood of tiny tasks. Batching is the fix: with a chunksize of "
        "tasks / (4 × workers) each message carries thousands of items, the price is paid a "
        "few times per map, and the cores do the work in parallel. Both sides are timed best "
        "of a few tries, alternately, with the workers already started, because this machine "
        "is shared."
    ),
    predict="10 000 small items, Pool(2).map with chunksize 1 against a plain for loop: "
            "which finishes first, and by how much?",
    main=main,
    params=(
        Param("fixed", "bool", False,
              help="send the items in a few big chunks (chunksize) instead of one per task"),
        Param("tasks", "int", 10000, min=100, max=200_000, help="items to process"),
        Param("workers", "int", 2, min=1, max=8, help="processes in the pool"),
        Param("repeats", "int", 3, min=1, max=10, help="timings per side; the best counts"),
        start_method_param(),
    ),
)
