"""§10: what a process costs: start-up time, memory, and the price of talking to it."""
import os
import statistics
import threading
import time
from multiprocessing import Array, Event, Pipe, Process, Queue, get_context


def _size(n: float) -> str:
    """Bytes the way a person reads them: 14 KiB, 14.5 MiB."""
    return f"{n / 1024:,.0f} KiB" if n < 1 << 20 else f"{n / (1 << 20):,.1f} MiB"


def nothing():
    pass


def wait_until(event):
    event.wait()


def rss_of(pid):
    with open(f"/proc/{pid}/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def start_ms(make, repeats):
    """Median time to start a worker that does nothing and see it finish."""
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        w = make(target=nothing)
        w.start()
        w.join()
        times.append(time.perf_counter() - t0)
    return statistics.median(times) * 1000


def send_by_pipe(conn, ready, go, done, chunk, count):
    ready.set()
    go.wait()
    for _ in range(count):
        conn.send_bytes(chunk)


def send_by_queue(q, ready, go, done, chunk, count):
    ready.set()
    go.wait()
    for _ in range(count):
        q.put(chunk)


def send_by_array(arr, ready, go, done, chunk, count):
    view = memoryview(arr).cast("B")
    view[:] = bytes(len(view))  # touch every page before the clock starts, like a busy worker
    ready.set()
    go.wait()
    for i in range(count):
        view[i * len(chunk):(i + 1) * len(chunk)] = chunk
    done.set()


def mb_per_s(target, channel, receive, chunk, count):
    """Start a sender, then time moving count × chunk bytes into this process's hands."""
    ready, go, done = Event(), Event(), Event()
    p = Process(target=target, args=(channel, ready, go, done, chunk, count))
    p.start()
    ready.wait()  # the clock starts once the sender is up, not while it starts
    t0 = time.perf_counter()
    go.set()
    receive(done)
    seconds = time.perf_counter() - t0
    p.join()
    # MiB/s, the family the chunk sizes and every memory figure on the page are in.
    return len(chunk) * count / seconds / (1 << 20)


def main(ctx, repeats=3, megabytes=32, idle_workers=4, start_method="fork"):
    found = {}
    with ctx.untraced("timing start-up and throughput"):
        # 1. Start-up: a thread, then a process per start method.
        found["start_ms_thread"] = start_ms(threading.Thread, repeats * 10)
        for method in ("fork", "forkserver", "spawn"):
            context = get_context(method)
            if method == "forkserver":
                start_ms(context.Process, 1)  # starts the server itself: not counted
            found[f"start_ms_{method}"] = start_ms(context.Process, repeats)

        # 2. Memory: idle threads in this process vs idle child processes.
        stop = threading.Event()
        before = rss_of("self")
        threads = [threading.Thread(target=wait_until, args=(stop,)) for _ in range(idle_workers)]
        for t in threads:
            t.start()
        found["rss_per_thread_bytes"] = max(0, rss_of("self") - before) // idle_workers
        stop.set()
        for t in threads:
            t.join()
        stop = Event()
        children = [Process(target=wait_until, args=(stop,)) for _ in range(idle_workers)]
        for p in children:
            p.start()
        time.sleep(0.2)  # let spawned children finish importing
        found["rss_per_process_bytes"] = sum(rss_of(p.pid) for p in children) // idle_workers
        stop.set()
        for p in children:
            p.join()

        # 3. Throughput: the same bytes through a Pipe, a Queue, and a shared Array.
        chunk = os.urandom(1 << 20)
        count = megabytes
        parent_conn, child_conn = Pipe(duplex=False)
        found["pipe_mb_s"] = mb_per_s(send_by_pipe, child_conn, lambda done: [
            parent_conn.recv_bytes() for _ in range(count)], chunk, count)
        q = Queue()
        found["queue_mb_s"] = mb_per_s(send_by_queue, q, lambda done: [
            q.get() for _ in range(count)], chunk, count)
        arr = Array("B", len(chunk) * count, lock=False)
        # Written in place by the child; the parent copies the bytes out once it is told.
        found["shared_mb_s"] = mb_per_s(send_by_array, arr, lambda done: (
            done.wait(), bytes(memoryview(arr).cast("B"))), chunk, count)

    for key, value in found.items():
        print(f"{key}: {value:,.0f}" if key.startswith("rss") else f"{key}: {value:,.2f}")
    explain = {
        "start_ms_thread": "A thread started and finished in {:.3f} ms",
        "start_ms_fork": "A fork child started and finished in {:.1f} ms",
        "start_ms_forkserver": "A forkserver child took {:.1f} ms once the server was up (it still imports the target's module)",
        "start_ms_spawn": "A spawn child, a fresh interpreter, took {:.1f} ms",
        "rss_per_thread_bytes": "An idle thread added {} to the memory (RSS) of its process",
        "rss_per_process_bytes": "An idle " + start_method + " child showed {} of memory "
                                 "(RSS, pages shared with its parent included)",
        "pipe_mb_s": "A Pipe moved {:,.0f} MiB/s",
        "queue_mb_s": "A Queue moved {:,.0f} MiB/s",
        "shared_mb_s": "A shared Array took writes at {:,.0f} MiB/s",
    }
    notes = {
        "start_ms_spawn": f", {found['start_ms_spawn'] / found['start_ms_thread']:,.0f}× a thread",
        "rss_per_process_bytes": f", {found['rss_per_process_bytes'] / max(1, found['rss_per_thread_bytes']):,.0f}× a thread's",
        "shared_mb_s": f", {found['shared_mb_s'] / found['pipe_mb_s']:,.1f}× the Pipe",
        "pipe_mb_s": f" ({megabytes} MiB in 1 MiB messages)",
    }
    for key, value in found.items():
        unit = "ms" if key.startswith("start") else "B" if key.startswith("rss") else "MiB/s"
        rounded = round(value, 3) if unit == "ms" else int(value) if unit == "B" else round(value)
        shown = _size(value) if unit == "B" else value
        ctx.finding(key, rounded, explain[key].format(shown) + notes.get(key, "") + ".",
                    unit=unit, headline=key == "start_ms_spawn")  # the predict's question
    return {k: round(v, 3) for k, v in found.items()}


from mpdash.lessons import Lesson, Param, start_method_param  # noqa: E402

LESSON = Lesson(
    id="process-costs", title="What a process costs", section="10",
    section_title="Disadvantages of multiprocessing", order=1,
    summary="Start-up time per start method, memory per process vs per thread, IPC throughput.",
    explanation=(
        "A thread is a new stack in the same interpreter; a process is a whole interpreter, and "
        "how it is made decides the price: fork copies the running process, forkserver forks a "
        "small server that was started once, and spawn starts Python from scratch and imports "
        "everything again. Memory follows the same logic, although RSS overstates a forked "
        "child, whose pages stay shared with its parent until one of them writes. Talking is "
        "the other cost: a Pipe and a Queue pickle and copy every byte through the kernel (the "
        "Queue adds a feeder thread), while a shared Array is written in place. Every number "
        "here is measured untraced; and the harder debugging the tutorial mentions is what this "
        "dashboard's per-process output, exit codes and timeline are for."
    ),
    predict="Rank thread, fork, forkserver and spawn by start-up time. How many times slower "
            "than a thread is spawn?",
    main=main,
    params=(
        Param("repeats", "int", 3, min=1, max=20, help="starts timed per start method (median)"),
        Param("megabytes", "int", 32, min=1, max=256, unit="MiB",
              help="data sent through each channel"),
        Param("idle_workers", "int", 4, min=1, max=16,
              help="threads, then processes, whose memory is measured"),
        start_method_param(),
    ),
)
