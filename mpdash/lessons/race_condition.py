"""§6, beyond the tutorial: N processes add 1 to one shared Value, without and with its lock."""
import time
from multiprocessing import Process, Value


def add_one(counter, times):
    for _ in range(times):
        counter.value += 1


def add_one_locked(counter, times):
    for _ in range(times):
        with counter.get_lock():
            counter.value += 1


def run_all(target, processes, times):
    counter = Value('i', 0)
    workers = [Process(target=target, args=(counter, times)) for _ in range(processes)]
    started = time.perf_counter()
    for p in workers:
        p.start()
    for p in workers:
        p.join()
    return counter.value, time.perf_counter() - started


def main(ctx, processes=4, times=100_000, start_method="fork"):
    expected = processes * times
    with ctx.untraced("the race: tracing every write would change its timing"):
        ctx.mark("unlocked")
        unlocked, unlocked_s = run_all(add_one, processes, times)
        ctx.mark("locked")
        locked, locked_s = run_all(add_one_locked, processes, times)
    print(f"expected {expected}, unlocked {unlocked} in {unlocked_s:.2f} s, "
          f"locked {locked} in {locked_s:.2f} s")

    lost = expected - unlocked
    ctx.finding("expected", expected, f"{processes} processes × {times:,} increments should "
                                      f"give {expected:,}.")
    ctx.finding("unlocked_total", unlocked,
                f"Without get_lock() the counter ended at {unlocked:,} after {unlocked_s:.2f} s.")
    ctx.finding("locked_total", locked,
                f"With get_lock() around each += 1 it ended at {locked:,} after {locked_s:.2f} s "
                f"({locked_s / unlocked_s:.1f}× the unlocked time).")
    ctx.finding("lost_updates", lost,
                f"{lost:,} of {expected:,} updates lost ({lost / expected:.1%}) without the "
                f"lock; {expected - locked:,} with it."
                if lost else f"No update of {expected:,} was lost this time, "
                             f"{expected - locked:,} with the lock: run it again, or raise times.",
                headline=True)
    return {"expected": expected, "unlocked": unlocked, "locked": locked}


from mpdash.lessons import Lesson, Param, start_method_param  # noqa: E402

LESSON = Lesson(
    id="race-condition", title="Race condition", section="6", section_title="Shared memory",
    order=2,
    summary="counter.value += 1 from several processes loses updates unless you hold the lock.",
    explanation=(
        "counter.value += 1 looks like one step but is two: read the value, then write it plus "
        "one. The lock that comes with a Value is taken for the read and again for the write, "
        "so another process can slip in between, read the same old number, and one of the two "
        "increments vanishes. Holding counter.get_lock() around the whole += makes it one step "
        "that nobody can interrupt: the total is exact, and the run is slower because the "
        "processes now take turns. Both halves run untraced, because recording every write "
        "would change the timing being demonstrated."
    ),
    predict="4 processes each add 1 to a shared counter 100 000 times. What is the total?",
    main=main,
    params=(
        Param("processes", "int", 4, min=2, max=8, help="processes incrementing the counter"),
        Param("times", "int", 100_000, min=1000, max=1_000_000,
              help="increments per process"),
        start_method_param(),
    ),
)
