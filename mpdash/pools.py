"""Pool insights (issue 14): for every pool of a run, who ran what, how busy the workers were,
the slowest tasks, and whether dispatch cost more than the work — from what tracing already
reports (``task_start``/``task_end`` events and a busy worker's ``traffic`` summaries), with no
change to the program. The shape is docs/API.md's ``Pool``. The run's end computes them from all
its events (the authority, with the findings); while it is live, engine/livepools.py feeds the
same fold (``Collector``) the events as they come and rebuilds the pools from it.

Why the pool's life is "first task start to last task end": before it the pool is starting its
workers, after it the program is doing something else; over that span a worker either runs a
task or waits (for a message, for a core, for the others to finish).
"""
from __future__ import annotations

import bisect
import os
import statistics

__all__ = ["insights", "pools_of", "build", "findings_of", "Collector", "KINDS"]

# A pool's channel prefix (as tracing names it) -> the kind shown to users.
KINDS = {"Pool": "Pool", "ThreadPool": "ThreadPool", "Executor": "ProcessPoolExecutor",
         "Loky": "loky"}
SLOWEST = 3
_TASK_KINDS = frozenset(("task_start", "task_end", "traffic"))
DETAIL = 200          # characters of a task's description kept (a bounded repr)


def _kind(channel) -> str | None:
    """Only pools' channels carry task events; a subclass's pool is named after its class."""
    if not isinstance(channel, str):
        return None
    return KINDS.get(channel.split("-", 1)[0], "Pool")


def _quantile(ordered: list[float], q: float) -> float | None:
    """Nearest rank (of values in order): a value some task really took."""
    if not ordered:
        return None
    return ordered[min(len(ordered) - 1, max(0, round(q * len(ordered) + 0.5) - 1))]


def _top(kept: list, seconds: float, pid, detail) -> None:
    """Keep ``kept`` the SLOWEST slowest (seconds, pid, detail) so far, slowest first, the
    earlier of a tie first: what a stable sort of all of them by seconds would put first."""
    if len(kept) >= SLOWEST and seconds <= kept[-1][0]:
        return      # most tasks: not among the slowest, and their detail is not even read
    item = (seconds, pid, str(detail or "")[:DETAIL])
    at = len(kept)
    while at and kept[at - 1][0] < item[0]:
        at -= 1
    if at < SLOWEST:
        kept.insert(at, item)
        del kept[SLOWEST:]


class _Worker:
    __slots__ = ("pid", "thread", "tasks", "items", "busy", "untimed", "events", "in_order",
                 "gaps", "gaps_read", "gap_from")

    def __init__(self, pid, thread):
        self.pid, self.thread = pid, thread
        self.tasks = self.items = self.untimed = 0
        self.busy = 0.0
        self.events: list = []    # (t, "start"|"end") of tasks reported one by one
        # A live run's pools are rebuilt every second from the same fold: the gaps between
        # tasks are read once each while the events come in time order (they do, from one
        # worker), and from a sorted copy only if they ever did not.
        self.in_order = True
        self.gaps: list = []
        self.gaps_read = 0
        self.gap_from = None

    def did(self, t, what: str) -> None:
        if self.events and (t, what) < self.events[-1]:
            self.in_order = False
        self.events.append((t, what))


class _Pool:
    def __init__(self, channel: str):
        self.id, self.kind = channel, _kind(channel)
        self.workers: dict[tuple, _Worker] = {}
        self.starts: dict = {}                # msg -> task_start event
        self.timed = 0                        # tasks reported one by one
        self.durations: list[float] = []      # their seconds, in order
        # The slowest (seconds, pid, detail) of those, and of the summaries' slowest tasks.
        self.slowest_timed: list[tuple[float, int, str]] = []
        self.slowest_summarised: list[tuple[float, int, str]] = []
        self.first = self.last = None
        self.overheads: list[tuple[float, int]] = []     # (waiting s, tasks) of summaries

    def worker(self, event) -> _Worker:
        thread = event.get("tid")
        if thread is not None:     # only a ThreadPool's tasks say which thread ran them
            self.kind = "ThreadPool"
        key = (event.get("pid"), thread)
        found = self.workers.get(key)
        if found is None:
            found = self.workers[key] = _Worker(*key)
        return found

    def saw(self, start, end) -> None:
        if self.first is None or start < self.first:
            self.first = start
        if self.last is None or end > self.last:
            self.last = end


class Collector:
    """The events of a run folded into its pools, in the order they were numbered (seq). Fed in
    batches or all at once it holds the same pools: ``build`` reads it and never changes it."""

    def __init__(self):
        self.pools: dict[str, _Pool] = {}

    def feed(self, events) -> None:
        # ~1.5 µs an event: a live run's refreshes fold thousands a second (engine/livepools.py)
        pools = self.pools
        for event in events:
            kind = event.get("kind")
            if kind not in _TASK_KINDS:
                continue
            channel = event.get("channel")
            if not isinstance(channel, str):     # only pools' channels carry task events
                continue
            if kind == "traffic" and not event.get("tasks_ended"):
                continue
            pool = pools.get(channel)
            if pool is None:
                pool = pools[channel] = _Pool(channel)
            t = event.get("t") or 0.0
            if kind == "task_start":
                pool.starts[event.get("msg")] = event
                pool.worker(event).did(t, "start")
                pool.saw(t, t)
            elif kind == "task_end":
                worker = pool.worker(event)
                seconds = float(event.get("seconds") or 0.0)
                worker.tasks += 1
                worker.items += int(event.get("items") or 1)
                worker.busy += seconds
                worker.did(t, "end")
                pool.timed += 1
                bisect.insort(pool.durations, seconds)
                start = pool.starts.get(event.get("msg"))
                _top(pool.slowest_timed, seconds, event.get("pid"),
                     (start or {}).get("detail") or event.get("detail"))
                pool.saw(t - seconds, t)
            else:   # a busy worker's counts: tasks_ended tasks, task_s seconds of them
                worker = pool.worker(event)
                ended = int(event["tasks_ended"])
                worker.tasks += ended
                worker.items += int(event.get("items") or ended)
                if event.get("task_s") is not None:
                    worker.busy += float(event["task_s"])
                    interval = float(event.get("interval") or 0.0)
                    if interval > 0:
                        pool.overheads.append((max(0.0, interval - float(event["task_s"])), ended))
                else:
                    worker.untimed += ended
                if event.get("slowest_s") is not None:
                    _top(pool.slowest_summarised, float(event["slowest_s"]), event.get("pid"),
                         event.get("slowest"))
                interval = float(event.get("interval") or 0.0)
                pool.saw(t - interval, t)


def _collect(events) -> dict[str, _Pool]:
    collector = Collector()
    collector.feed(events)
    return collector.pools


def _gaps(worker: _Worker) -> list[float]:
    """Seconds between the end of one task and the start of this worker's next one."""
    if not worker.in_order:
        return _gaps_of(sorted(worker.events), [], None)[0]
    # Events in order: go on from where the last build stopped (a memo, not a change).
    worker.gaps, worker.gap_from = _gaps_of(worker.events[worker.gaps_read:], worker.gaps,
                                            worker.gap_from)
    worker.gaps_read = len(worker.events)
    return worker.gaps


def _gaps_of(events, out: list, ended):
    for t, what in events:
        if what == "end":
            ended = t
        elif ended is not None:
            out.append(max(0.0, t - ended))
            ended = None
    return out, ended


def _idle_workers(pool: _Pool, processes: dict, taken: set) -> list[int]:
    """A process pool's workers that ran nothing: other children of the same parent, started
    by multiprocessing during the pool's life. Only when the parent is unambiguous."""
    if pool.kind == "ThreadPool" or pool.first is None:
        return []
    pids = {w.pid for w in pool.workers.values()}
    parents = {getattr(processes.get(pid), "ppid", None) for pid in pids}
    if len(parents) != 1 or None in parents:
        return []
    parent = parents.pop()
    found = []
    for proc in processes.values():
        if (proc.pid in pids or proc.pid in taken or proc.ppid != parent
                or proc.role != "worker" or proc.start_method is None):
            continue
        if proc.started_at <= pool.last and (proc.ended_at is None or proc.ended_at >= pool.first):
            found.append(proc.pid)
    return found


def _cpu(pids: set, frames, first: float, last: float) -> float | None:
    """The workers' mean CPU (% of one core) over the pool's life, from the run's frames."""
    total = count = 0
    for frame in frames:
        if not first <= frame["t"] <= last + 0.2:
            continue
        for pid, cpu in zip(frame["pid"], frame["cpu"]):
            if pid in pids:
                total += cpu
                count += 1
    return round(total / count, 1) if count else None


def pools_of(events, processes: dict, frames=()) -> list[dict]:
    """docs/API.md's ``pools`` of a run, from copies of its events, processes and frames."""
    return build(_collect(events), processes, frames)


def build(collected: dict[str, _Pool], processes: dict, frames=()) -> list[dict]:
    """The ``pools`` of what a ``Collector`` holds (its ``pools``), which stays as it was."""
    out = []
    taken: set = set()
    for pool in collected.values():
        tasks = sum(w.tasks for w in pool.workers.values())
        if not tasks or pool.first is None:
            continue
        known_busy = sum(w.busy for w in pool.workers.values())
        mean = known_busy / (tasks - sum(w.untimed for w in pool.workers.values()) or 1)
        span = max(0.0, pool.last - pool.first)
        idle_pids = _idle_workers(pool, processes, taken)
        workers, ran = [], 0.0
        for w in pool.workers.values():
            # Summaries from an older tracer had no seconds: their tasks count at the mean.
            # One worker runs one task at a time: never busy longer than the pool's life.
            ran += w.busy + w.untimed * mean
            busy_s = min(span, w.busy + w.untimed * mean)
            workers.append({"pid": w.pid, "thread": w.thread, "tasks": w.tasks, "items": w.items,
                            "busy_s": round(busy_s, 6), "idle_s": round(span - busy_s, 6)})
        workers += [{"pid": pid, "thread": None, "tasks": 0, "items": 0, "busy_s": 0.0,
                     "idle_s": round(span, 6)} for pid in idle_pids]
        workers.sort(key=lambda w: (w["pid"] or 0, w["thread"] or 0))
        taken |= {w["pid"] for w in workers}
        busy = sum(w["busy_s"] for w in workers)
        gaps = [g for w in pool.workers.values() for g in _gaps(w)]
        dispatch = statistics.median(gaps) if len(gaps) >= 3 else None
        if dispatch is None and pool.overheads:
            waited, ended = map(sum, zip(*pool.overheads))
            dispatch = waited / ended if ended >= 3 else None
        # Stable, like sorting every task: the top of each list holds the top of both.
        slowest = sorted(pool.slowest_timed + pool.slowest_summarised, key=lambda s: -s[0])
        slowest = slowest[:SLOWEST]
        out.append({
            "id": pool.id, "kind": pool.kind, "started_at": round(pool.first, 6),
            "ended_at": round(pool.last, 6), "span_s": round(span, 6), "workers": workers,
            "tasks": tasks, "items": sum(w["items"] for w in workers), "timed": pool.timed,
            "busy": round(min(1.0, busy / (len(workers) * span)), 4) if span > 0 else None,
            "cpu": _cpu({w["pid"] for w in workers}, frames, pool.first, pool.last)
                   if pool.kind != "ThreadPool" else None,
            "task_s": {"mean": round(ran / tasks, 6),
                       "p50": _rounded(_quantile(pool.durations, 0.5)),
                       "p95": _rounded(_quantile(pool.durations, 0.95)),
                       "max": _rounded(slowest[0][0]) if slowest else None},
            "dispatch_s": _rounded(dispatch),
            "slowest": [{"pid": pid, "seconds": round(s, 6), "detail": d} for s, pid, d in slowest],
        })
    return out


def _rounded(value):
    return None if value is None else round(value, 6)


def _dur(seconds: float) -> str:
    if seconds >= 1.0:
        return f"{seconds:.2f} s"
    if seconds >= 0.01:
        return f"{seconds * 1000:.0f} ms"
    if seconds >= 0.001:
        return f"{seconds * 1000:.1f} ms"
    return f"{seconds * 1000:.2f} ms"


def _plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


def findings_of(pools: list[dict], cores: int | None = None) -> list[dict]:
    """One sentence each, with this run's numbers: busy, spread, slowest, dispatch."""
    cores = cores or os.cpu_count() or 1
    found = []
    for n, pool in enumerate(pools):
        suffix = "" if n == 0 else f".{pool['id']}"
        name, workers = pool["id"], pool["workers"]
        unit = "thread" if pool["kind"] == "ThreadPool" else "worker"
        if pool["busy"] is not None:
            idle = statistics.fmean(w["idle_s"] for w in workers)
            busy = round(pool["busy"] * 100, 1)
            text = (f"{name}: its {_plural(len(workers), unit)} were busy {busy} % of the "
                    f"pool's {_dur(pool['span_s'])}, idle {_dur(idle)} each on average")
            on_core = pool["cpu"] / (pool["busy"] * 100) if pool["cpu"] and pool["busy"] else None
            if on_core is not None and len(workers) > cores and on_core < 0.5:
                # Wall-clock busy is not CPU: more workers than cores take turns on them.
                text += (f"; {len(workers)} workers on {_plural(cores, 'core')} got "
                         f"{pool['cpu']:.1f} % of a core each: a task ran on a core "
                         f"{on_core * 100:.0f} % of its time and waited the rest")
            found.append({"key": "pool_busy" + suffix, "value": busy, "unit": "%",
                          "text": text + "."})
        counts = [w["tasks"] for w in workers]
        mean = statistics.fmean(counts)
        none = sum(1 for c in counts if c == 0)
        even = max(counts) <= 1.25 * mean and min(counts) >= 0.75 * mean
        ratio = round(max(counts) / mean, 2)
        text = (f"{name}: {_plural(pool['tasks'], 'task')} went to {_plural(len(workers), unit)}, "
                f"{min(counts)} to {max(counts)} each (mean {mean:.1f}, the most {ratio}× the "
                f"mean): {'evenly' if even else 'unevenly'} spread")
        if none:
            text += f"; {_plural(none, unit)} got none"
        found.append({"key": "pool_spread" + suffix, "value": ratio, "unit": "× mean",
                      "text": text + "."})
        if pool["slowest"]:
            top, median = pool["slowest"][0], pool["task_s"]["p50"]
            ratio = f" ({top['seconds'] / median:.1f}× the median)" if median else ""
            ms = round(top["seconds"] * 1000, 2)
            found.append({"key": "pool_slowest" + suffix, "value": ms, "unit": "ms",
                          "text": f"{name}: the slowest task took {ms} ms{ratio}, "
                                  f"in {unit} {top['pid']}: {top['detail']}."})
        # The typical task (median), not the mean: one preempted task must not hide the rule.
        dispatch, task = pool["dispatch_s"], pool["task_s"]["p50"] or pool["task_s"]["mean"]
        if dispatch is not None and dispatch > task and pool["tasks"] >= 2 * len(workers):
            times = round(dispatch / task, 1) if task else None
            found.append({"key": "pool_dispatch" + suffix, "value": times, "unit": "× task",
                          "text": f"{name}: each task took {_dur(task)} and each message "
                                  f"{_dur(dispatch)} ({times}× the work): batch them (a larger "
                                  f"chunksize sends more work per message)."})
    return found


def insights(events, processes: dict, frames=(), cores: int | None = None) -> tuple[list, list]:
    """(pools, findings) of a run from copies of its events, processes and frames."""
    pools = pools_of(events, processes, frames)
    return pools, findings_of(pools, cores)
