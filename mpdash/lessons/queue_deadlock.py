"""§12: join() before get() on a Queue: with a large item, parent and child wait for each other."""
import fcntl
import time
from multiprocessing import Process, Queue

GIVE_UP_S = 6.0  # how long the main waits in join() before it calls the hang a hang


def send(q, size):
    q.put(b"x" * size)
    # The function returns at once; the process cannot exit until its feeder thread has
    # written the whole pickled item into the queue's pipe.


def main(ctx, fixed=False, kilobytes=1024, start_method="fork"):
    size = kilobytes * 1024
    q = Queue()
    # A Queue is a pipe underneath: ask the kernel how many bytes that pipe holds.
    pipe_bytes = fcntl.fcntl(q._reader.fileno(), fcntl.F_GETPIPE_SZ)
    p = Process(target=send, args=(q, size))
    p.start()

    started = time.perf_counter()
    if fixed:
        item = q.get()                 # the fix: take the item first...
        p.join()                       # ...then wait for the child
    else:
        p.join(timeout=GIVE_UP_S)      # the pitfall: wait for the child first
        item = None if p.is_alive() else q.get()
    waited = time.perf_counter() - started
    deadlocked = item is None
    too_big = deadlocked or size >= pipe_bytes   # pickling adds a few bytes to the item

    if deadlocked:
        print(f"join() still waiting after {waited:.1f} s: the child is stuck in its put")
        p.terminate()                  # end the hang ourselves, as Ctrl-C would
        p.join()
    else:
        print(f"got {len(item):,} bytes; the child exited with {p.exitcode}")

    ctx.finding("item_bytes", size, f"The child put an item of {size:,} bytes "
                                    f"({kilobytes:,} KiB) on the queue.", unit="B")
    ctx.finding("pipe_buffer_bytes", pipe_bytes,
                f"The queue's pipe holds {pipe_bytes:,} bytes "
                f"({pipe_bytes // 1024} KiB), so the item "
                + ("did not fit: its writer had to wait for a reader."
                   if too_big else "fitted: the child could exit without a reader."),
                unit="B")
    ctx.finding("waited_s", round(waited, 2),
                f"The main waited {waited:.2f} s "
                + ("in join() and gave up: the child never finished its put."
                   if deadlocked else "for the item and the child's exit."), unit="s")
    ctx.finding("deadlocked", deadlocked,
                f"Deadlocked: the main sat in join() for {waited:.1f} s while the child's "
                f"feeder thread sat in a pipe write that only a get() could drain."
                if deadlocked else
                f"No deadlock: the {size:,}-byte item reached the main after {waited:.2f} s"
                + (", because get() came before join()." if fixed
                   else f", because it fits in the {pipe_bytes:,}-byte pipe."), headline=True)
    return None if deadlocked else len(item)


from mpdash.lessons import Lesson, Param, start_method_param  # noqa: E402

LESSON = Lesson(
    id="queue-deadlock", title="Queue deadlock", section="12",
    section_title="When it goes wrong", order=1,
    summary="join() before get(): a child with a large item on a Queue never exits.",
    explanation=(
        "put() returns at once because a feeder thread in the child writes the pickled item "
        "into the queue's pipe later. A process does not exit until its feeder thread has "
        "written everything, and a pipe holds only so many bytes (64 KiB by default on Linux) "
        "until someone reads. So when the main calls join() before get(), the main waits for "
        "the child to exit, the child waits for the main to read, and neither ever moves: the "
        "stall banner and the two stacks show the main in join() and the child's feeder thread "
        "in a pipe write. A small item fits in the pipe and the same code works, which is why "
        "the bug hides in tests. The fix is the order the multiprocessing docs give: get() "
        "everything first, then join(). This lesson gives up after 6 s and ends the child "
        "itself."
    ),
    predict="The child puts 1 MiB on a Queue and the main joins it before calling get(). "
            "What happens? And with 16 KiB?",
    main=main,
    params=(
        Param("fixed", "bool", False, help="get() the item before join() (the documented fix)"),
        Param("kilobytes", "int", 1024, min=1, max=65536, unit="KiB",
              help="size of the item the child puts; find the size at which the pitfall starts"),
        start_method_param(),
    ),
)
