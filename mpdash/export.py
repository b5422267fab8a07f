"""A run exported for other tools: metrics as CSV, the whole run as a Chrome trace (Perfetto).

Both read a Run's JSON (``Run.to_json()``), so a stored run exports like a live one.

Trace layout (legacy Chrome JSON, which ui.perfetto.dev and chrome://tracing open):
- one trace process per OS process (``pid``), named ``"<name> [<role>]"``, sorted by birth;
- its lifetime: a complete event (``X``) on thread ``pid`` with ppid, role, start method, exit
  code and how it ended in ``args``; IPC events and printed lines are instants (``i``) on it, and
  a put/send is joined to its get/recv (same ``channel`` and ``msg``) by a flow arrow (``s``/``f``);
- pool tasks (``task_start``/``task_end`` paired by ``msg``) as ``X`` slices on a second thread
  of the process named "tasks" (tid ``pid + TASKS_TID``, above any real pid), so they never have
  to nest inside the lifetime slice when clocks of two processes disagree by a microsecond
  (tasks that overlap in one process get "tasks 2", ``pid + 2·TASKS_TID``, and so on);
- CPU % and RSS per process as counters (``C``), the machine's per-core CPU as a counter on the
  main process; ``ctx.mark`` phases as global instants;
- each stacks Snapshot as one instant (``stacks``) per process, its threads' frames in ``args``.
Timestamps are microseconds since the run's start (``otherData.origin`` holds it in Unix seconds).
"""
from __future__ import annotations

import csv
import io
import time

__all__ = ["CSV_COLUMNS", "metrics_csv", "chrome_trace", "TASKS_TID"]

CSV_COLUMNS = ("t", "pid", "cpu_percent", "rss_bytes", "core", "status", "threads")
TASKS_TID = 1 << 22          # Linux pids are below 2**22 (pid_max's ceiling): tid = pid + k·2**22
_FLOW_PAIRS = {"queue_put": "queue_get", "pipe_send": "pipe_recv"}
_NOT_INSTANTS = {"task_start", "task_end", "mark"}


def metrics_csv(run: dict) -> str:
    """``t,pid,cpu_percent,rss_bytes,core,status,threads``: one row per process per sample."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for frame in run.get("metrics") or []:
        status = frame.get("status") or ""
        for i, pid in enumerate(frame.get("pid") or []):
            writer.writerow((frame["t"], pid, frame["cpu"][i], frame["rss"][i] * 1024,
                             frame["core"][i], status[i] if i < len(status) else "",
                             frame["threads"][i]))
    return out.getvalue()


def chrome_trace(run: dict) -> dict:
    """The run as a Chrome Trace Event Format object (``{"traceEvents": [...], ...}``)."""
    procs = sorted(run.get("processes") or [], key=lambda p: (p["started_at"] or 0, p["pid"]))
    events = run.get("events") or []
    frames = run.get("metrics") or []
    output = run.get("output") or []
    marks = run.get("marks") or []
    stacks = run.get("stacks") or []
    times = [run["started_at"]] + [p["started_at"] for p in procs if p["started_at"]]
    times += [x["t"] for x in (*events, *frames, *output, *marks, *stacks)]
    origin = min(times)
    end_of_run = run.get("ended_at") or max(times + [time.time()])
    main_pid = next((p["pid"] for p in procs if p["role"] == "main"), procs[0]["pid"] if procs else 0)

    def us(t: float) -> float:
        return round((t - origin) * 1e6, 3)

    trace: list[dict] = []
    lifetimes: dict[int, tuple[float, float]] = {}
    for index, proc in enumerate(procs):
        pid = proc["pid"]
        name = proc["name"] or ("MainProcess" if proc["role"] == "main" else f"pid {pid}")
        label = f"{name} [{proc['role']}{', daemon' if proc['daemon'] else ''}]"
        start = proc["started_at"] or run["started_at"]
        end = proc["ended_at"] or end_of_run
        lifetimes[pid] = (start, end)
        trace += [
            {"ph": "M", "name": "process_name", "pid": pid, "tid": pid, "ts": 0,
             "args": {"name": label}},
            {"ph": "M", "name": "process_sort_index", "pid": pid, "tid": pid, "ts": 0,
             "args": {"sort_index": index}},
            {"ph": "M", "name": "thread_name", "pid": pid, "tid": pid, "ts": 0,
             "args": {"name": name}},
            {"ph": "X", "name": name, "cat": "process", "pid": pid, "tid": pid,
             "ts": us(start), "dur": max(0.0, round(us(end) - us(start), 3)),
             "args": {"pid": pid, "ppid": proc["ppid"], "role": proc["role"],
                      "daemon": proc["daemon"], "orphan": proc["orphan"],
                      "start_method": proc["start_method"], "exitcode": proc["exitcode"],
                      "end": proc["end"], "running": proc["ended_at"] is None}},
        ]
    trace += _tasks(events, lifetimes, end_of_run, us)
    trace += _ipc(events, us)
    for line in output:
        trace.append({"ph": "i", "s": "t", "name": "print" if line["stream"] == "out" else "stderr",
                      "cat": "output", "pid": line["pid"], "tid": line["pid"], "ts": us(line["t"]),
                      "args": {"text": line["text"]}})
    for mark in marks:
        trace.append({"ph": "i", "s": "g", "name": str(mark["label"]), "cat": "mark",
                      "pid": main_pid, "tid": main_pid, "ts": us(mark["t"]),
                      "args": dict(mark.get("detail") or {})})
    trace += _stacks(stacks, us)
    for frame in frames:
        ts = us(frame["t"])
        for i, pid in enumerate(frame["pid"]):
            trace.append({"ph": "C", "name": "cpu %", "pid": pid, "tid": pid, "ts": ts,
                          "args": {"cpu_percent": frame["cpu"][i]}})
            trace.append({"ph": "C", "name": "rss", "pid": pid, "tid": pid, "ts": ts,
                          "args": {"rss_bytes": frame["rss"][i] * 1024}})
        if frame.get("cores") and main_pid:
            trace.append({"ph": "C", "name": "machine cpu % per core", "pid": main_pid,
                          "tid": main_pid, "ts": ts,
                          "args": {f"core{c}": v for c, v in enumerate(frame["cores"])}})
    named = {e["pid"] for e in trace if e["ph"] == "M" and e["name"] == "process_name"}
    for pid in sorted({e["pid"] for e in trace} - named):   # e.g. an event from an unseen pid
        trace.append({"ph": "M", "name": "process_name", "pid": pid, "tid": pid, "ts": 0,
                      "args": {"name": f"pid {pid}"}})
    return {
        "traceEvents": trace,
        "displayTimeUnit": "ms",
        "otherData": {"run": run["id"], "title": run["title"], "lesson": run["lesson"],
                      "state": run["state"], "origin": origin, "command": run.get("command"),
                      "error": run.get("error")},
    }


def _tasks(events: list[dict], lifetimes: dict, end_of_run: float, us) -> list[dict]:
    """``task_start``/``task_end`` pairs (by ``msg``) as slices on each worker's "tasks" thread.

    A process that runs tasks at the same time (a ``ThreadPool``, threads inside a worker) gets
    one more "tasks" thread per overlap: slices of one thread must nest, and overlapping tasks
    do not.
    """
    starts: dict = {}
    done: list[tuple[dict, float, dict | None]] = []
    for event in events:
        if event["kind"] == "task_start" and event.get("pid") is not None:
            starts[(event.get("channel"), event.get("msg"))] = event
        elif event["kind"] == "task_end":
            start = starts.pop((event.get("channel"), event.get("msg")), None)
            if start is None:   # an end that does not repeat the channel: its msg alone
                key = next((k for k in starts if k[1] == event.get("msg")), None)
                start = starts.pop(key) if key is not None else None
            if start is not None:
                done.append((start, event["t"], event))
    for start in starts.values():   # a worker that died mid-task: the slice ends with it
        done.append((start, lifetimes.get(start["pid"], (0, end_of_run))[1], None))

    out: list[dict] = []
    lanes: dict[int, list[float]] = {}      # pid -> end time of the last slice on each lane
    for start, end_t, end in sorted(done, key=lambda item: (item[0]["pid"], item[0]["t"])):
        pid = start["pid"]
        ts, stop = us(start["t"]), max(us(start["t"]), us(end_t))
        ends = lanes.setdefault(pid, [])
        lane = next((i for i, last in enumerate(ends) if last <= ts), len(ends))
        tid = pid + TASKS_TID * (lane + 1)
        if lane == len(ends):
            ends.append(stop)
            out.append({"ph": "M", "name": "thread_name", "pid": pid, "tid": tid, "ts": 0,
                        "args": {"name": "tasks" if lane == 0 else f"tasks {lane + 1}"}})
        ends[lane] = stop
        args = {k: v for k, v in start.items() if k not in ("seq", "run", "t", "pid", "kind")}
        if end is not None:
            args["result"] = end.get("detail")
            args.update({k: v for k, v in end.items()
                         if k not in args and k not in ("seq", "run", "t", "pid", "kind")})
        else:
            args["unfinished"] = True
        out.append({"ph": "X", "name": str(start.get("detail") or f"task {start.get('msg')}"),
                    "cat": "task", "pid": pid, "tid": tid, "ts": ts,
                    "dur": round(stop - ts, 3), "args": args})
    return out


def _ipc(events: list[dict], us) -> list[dict]:
    """IPC and other events as instants; each put/send joined to its get/recv by a flow.

    Events are in arrival order, and a receiver's report can arrive before its sender's (two
    processes, two connections): senders are indexed first.
    """
    out: list[dict] = []
    senders: dict = {}
    for event in events:
        if event["kind"] in _FLOW_PAIRS and event.get("msg") is not None \
                and event.get("pid") is not None:
            senders[(_FLOW_PAIRS[event["kind"]], event.get("channel"), event["msg"])] = event
    flow_id = 0
    for event in events:
        kind, pid = event["kind"], event.get("pid")
        if kind in _NOT_INSTANTS or pid is None:
            continue
        args = {k: v for k, v in event.items() if k not in ("seq", "run", "t", "pid", "kind")}
        ts = us(event["t"])
        out.append({"ph": "i", "s": "t", "name": kind, "cat": "ipc", "pid": pid, "tid": pid,
                    "ts": ts, "args": args})
        sender = senders.pop((kind, event.get("channel"), event.get("msg")), None)
        if sender is not None:
            flow_id += 1
            name = str(event.get("channel") or kind)
            from_ts = us(sender["t"])
            out.append({"ph": "s", "id": flow_id, "name": name, "cat": "ipc",
                        "pid": sender["pid"], "tid": sender["pid"], "ts": from_ts})
            out.append({"ph": "f", "bp": "e", "id": flow_id, "name": name, "cat": "ipc",
                        "pid": pid, "tid": pid, "ts": max(ts, from_ts)})
    return out


def _stacks(snapshots: list[dict], us) -> list[dict]:
    """A Snapshot as an instant per process, where its threads were at that moment."""
    out = []
    for snapshot in snapshots:
        for proc in snapshot.get("processes") or []:
            out.append({"ph": "i", "s": "p", "name": f"stacks ({snapshot.get('reason')})",
                        "cat": "stacks", "pid": proc["pid"], "tid": proc["pid"],
                        "ts": us(snapshot["t"]),
                        "args": {k: proc.get(k) for k in ("state", "wchan", "syscall", "python",
                                                          "threads")}})
    return out
