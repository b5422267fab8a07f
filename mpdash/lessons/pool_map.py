"""§7: a Pool of worker processes maps a function over a list."""
import time
from functools import partial
from multiprocessing import Pool


def square(n, spin=0.0):
    deadline = time.perf_counter() + spin
    while time.perf_counter() < deadline:  # CPU-bound work, so the cores visibly fill up
        pass
    return n * n


def main(ctx, workers=3, items=5, spin=0.0, chunksize=0, method="map", start_method="fork"):
    numbers = list(range(1, items + 1))
    with Pool(workers) as p:
        if method == "map":
            results = p.map(partial(square, spin=spin), numbers, chunksize or None)
        else:
            results = list(p.imap_unordered(partial(square, spin=spin), numbers, chunksize or 1))
    print(results)
    return results


from mpdash.lessons import Lesson, Param, start_method_param  # noqa: E402


def analyze(run):
    """Which worker ran how many items, from the task events the workers sent."""
    items: dict = {}
    tasks: dict = {}
    for event in run.events:
        if event["kind"] == "task_end":
            items[event["pid"]] = items.get(event["pid"], 0) + (event.get("items") or 1)
            tasks[event["pid"]] = tasks.get(event["pid"], 0) + 1
        elif event["kind"] == "traffic" and event.get("tasks_ended"):
            tasks[event["pid"]] = tasks.get(event["pid"], 0) + event["tasks_ended"]
    if not tasks:   # no task event reached the server: say what is known, not who ran what
        got = len(run.result) if isinstance(run.result, list) else 0
        return [{"key": "tasks_per_worker", "value": "unknown", "unit": None, "headline": True,
                 "text": f"{got} results came back, but no task event was recorded: which "
                         f"worker ran which item is not known."}]
    workers = sorted(pid for pid, p in run.processes.items()
                     if p["role"] == "worker" and p["start_method"] is not None)
    counts = [tasks.get(pid, 0) for pid in workers] or list(tasks.values())
    summarised = any(e["kind"] == "traffic" for e in run.events)
    def plural(n, word):
        return f"{n} {word}{'' if n == 1 else 's'}"

    # A task is one chunk; it says nothing to a newcomer unless the items inside are counted too.
    per = ", ".join(f"worker {pid} ran {plural(tasks.get(pid, 0), 'task')}"
                    + (f" ({plural(items[pid], 'item')})"
                       if pid in items and not summarised and items[pid] != tasks[pid] else "")
                    for pid in workers)
    idle = sum(1 for c in counts if c == 0)
    return [{"key": "tasks_per_worker", "value": "/".join(str(c) for c in counts), "unit": None,
             "headline": True,
             "text": f"{plural(sum(counts), 'task')} went to {len(counts)} workers: {per}"
                     + (f"; {plural(idle, 'worker')} got none." if idle else ".")}]


LESSON = Lesson(
    id="pool-map", title="Pool.map", section="7", section_title="Process pools", order=1,
    summary="Pool(3).map(square, [1..5]): a batch spread over worker processes.",
    explanation=(
        "A Pool starts a fixed number of worker processes once and reuses them for every task. "
        "map() cuts the input into chunks (by default about len / (4 × workers) items each), "
        "sends each chunk to an idle worker, and returns the results in input order, whichever "
        "worker finished first; imap_unordered() yields each result as soon as it is ready. "
        "The timeline draws each chunk on the lane of the worker that ran it: big chunks mean "
        "fewer messages, but a worker can be left with the slow end of the list. Leaving the "
        "with-block calls "
        "terminate(): the workers are ended with SIGTERM, which is how a Pool normally ends, "
        "not a crash."
    ),
    predict="With 3 workers and 5 items, does every worker get some of the work? Does the "
            "worker that starts first finish first?",
    main=main,
    analyze=analyze,
    params=(
        Param("workers", "int", 3, min=1, max=16, help="processes in the pool"),
        Param("items", "int", 5, min=1, max=10000, help="numbers to square: 1..items"),
        Param("spin", "float", 0.0, min=0.0, max=5.0, unit="s",
              help="CPU-bound work per item, so the run lasts long enough to watch"),
        Param("chunksize", "int", 0, min=0, max=10000,
              help="items per task (0: map's default, about len / (4 × workers))"),
        Param("method", "choice", "map", choices=("map", "imap_unordered"),
              help="map returns results in input order; imap_unordered as they finish"),
        start_method_param(),
    ),
)
