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
    workers = sorted(pid for pid, p in run.processes.items()
                     if p["role"] == "worker" and p["start_method"] is not None)
    ending = workers_end(run, workers)
    if not tasks:   # no task event reached the server: say what is known, not who ran what
        got = len(run.result) if isinstance(run.result, list) else 0
        return [{"key": "tasks_per_worker", "value": "unknown", "unit": None, "headline": True,
                 "text": f"{got} results came back, but no task event was recorded: which "
                         f"worker ran which item is not known."}] + ending
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
                     + (f"; {plural(idle, 'worker')} got none." if idle else ".")}] + ending


def workers_end(run, workers) -> list:
    """How this run's workers really ended, from their exit codes: leaving ``with Pool()``
    calls terminate(), but a worker that already took the pool's stop message exits 0 first."""
    if not workers:
        return []
    ended = {"terminated": [], "exit": [], "other": [], "unknown": []}
    for pid in workers:
        p = run.processes[pid]
        code = p.get("exitcode")
        if code is None:
            ended["unknown"].append(pid)
        elif code == -15:
            ended["terminated"].append(pid)
        elif code == 0:
            ended["exit"].append(pid)
        else:
            ended["other"].append(pid)
    n = len(workers)
    parts = []
    if ended["exit"]:
        k = len(ended["exit"])
        parts.append(f"{k} of {n} exited by {'itself' if k == 1 else 'themselves'} (exit 0) "
                     f"before terminate() reached {'it' if k == 1 else 'them'}")
    if ended["terminated"]:
        k = len(ended["terminated"])
        parts.append(f"{k} of {n} {'was' if k == 1 else 'were'} ended by terminate() with "
                     f"SIGTERM (exit code -15)")
    if ended["other"]:
        codes = ", ".join(str(run.processes[pid]["exitcode"]) for pid in ended["other"])
        parts.append(f"{len(ended['other'])} ended otherwise (exit code {codes})")
    if ended["unknown"]:
        parts.append(f"{len(ended['unknown'])} ended with an exit code nobody reported")
    value = f"{len(ended['exit'])} exit 0 / {len(ended['terminated'])} SIGTERM"
    return [{"key": "workers_end", "value": value, "unit": None,
             "text": "Leaving the with-block called terminate(): " + "; ".join(parts) + "."}]


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
        "with-block calls terminate(), which sends SIGTERM to every worker still alive: a "
        "normal end for a Pool, not a crash. A worker that has already taken the pool's stop "
        "message exits 0 first, so how this run's workers really ended is in its findings."
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
