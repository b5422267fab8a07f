"""§5a: a child puts a result on a Queue; the parent gets it."""
import time
from multiprocessing import Process, Queue


def square(n, q):
    q.put(n * n)


def square_all(numbers, q):
    for n in numbers:
        square(n, q)


def consume(q, totals):
    count = total = 0
    while (item := q.get()) is not None:
        count += 1
        total += item
    totals.put((count, total))


def main(ctx, producers=1, items=1, consumers=0, start_method="fork"):
    if (producers, items, consumers) == (1, 1, 0):
        # The tutorial's example, line for line.
        q = Queue()
        p = Process(target=square, args=(5, q))
        p.start()
        p.join()
        result = q.get()
        print(result)  # 25
        ctx.finding("received", result, f"The parent got {result} from the queue after the "
                                         f"child had already exited: the item waited in the pipe.",
                    headline=True)
        return result

    # Many items: get them while the producers still run. Joining a producer first can hang:
    # a process that put items does not exit until its feeder thread has flushed them all.
    started = time.perf_counter()
    q, totals = Queue(), Queue()
    numbers = [list(range(5 + k * items, 5 + (k + 1) * items)) for k in range(producers)]
    makers = [Process(target=square_all, args=(chunk, q)) for chunk in numbers]
    takers = [Process(target=consume, args=(q, totals)) for _ in range(consumers)]
    for p in makers + takers:
        p.start()
    if consumers:
        for p in makers:
            p.join()
        for _ in takers:
            q.put(None)  # one "no more items" per consumer
        counts = [totals.get() for _ in takers]
        for p in takers:
            p.join()
        count, total = sum(c for c, _ in counts), sum(t for _, t in counts)
    else:
        got = [q.get() for _ in range(producers * items)]
        for p in makers:
            p.join()
        count, total = len(got), sum(got)
    seconds = time.perf_counter() - started
    expected = sum(n * n for chunk in numbers for n in chunk)
    result = {"items": count, "sum": total}
    print(result)
    ctx.finding("received", count,
                f"{count} of {producers * items} items crossed the queue from {producers} "
                f"producer(s) to {consumers or 'the parent'}"
                f"{' consumer(s)' if consumers else ''} in {seconds:.2f} s "
                f"({count / seconds:,.0f} items/s), sum {'correct' if total == expected else 'WRONG'}.",
                headline=True)
    return result


from mpdash.lessons import Lesson, Param, start_method_param  # noqa: E402

LESSON = Lesson(
    id="queue", title="Queue", section="5", section_title="Inter-process communication",
    order=1,
    summary="square(5, q): a child puts 25 on a Queue, the parent gets it.",
    explanation=(
        "The child and the parent share no memory, so the child cannot simply hand its result "
        "back: it puts it on a Queue, which pickles the object and writes the bytes into a "
        "pipe. put() returns at once, because a background feeder thread in the child does the "
        "writing; the item then waits in the pipe until the parent calls get(), even after the "
        "child has exited. With several producers and consumers the same queue carries "
        "everything, one item at a time, and the message panel shows its depth rise and fall."
    ),
    predict="Where does 25 live between the child's put() and the parent's get()?",
    main=main,
    params=(
        Param("producers", "int", 1, min=1, max=8, help="processes putting items"),
        Param("items", "int", 1, min=1, max=20000, help="items each producer puts"),
        Param("consumers", "int", 0, min=0, max=8,
              help="processes getting items (0: the parent gets them, like the tutorial)"),
        start_method_param(),
    ),
)
