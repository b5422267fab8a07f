"""The verdict of a run: the one finding a projector shows in large type when the run ends.

A lesson marks its own headline (``ctx.finding(..., headline=True)`` or ``"headline": True`` in
what its ``analyze`` returns); this module keeps that to exactly one per run. A watched program
has no lesson to say what matters, so its verdict is computed here from the Run itself: how it
ended, and its busiest process by CPU time measured by the sampler.
"""
from __future__ import annotations

import os
import signal

__all__ = ["one_headline", "watch_verdict", "cpu_seconds"]


def one_headline(findings: list) -> list:
    """``findings`` with ``headline`` on each, true on the last one marked (or on none).

    The last wins because server-side analysis comes after the run's own findings and sees more
    (the whole run); two true flags would make the page pick one at random.
    """
    marked = [i for i, f in enumerate(findings) if f.get("headline")]
    keep = marked[-1] if marked else None
    return [{**f, "headline": i == keep} for i, f in enumerate(findings)]


def _how_it_ended(code: int | None) -> str:
    if code is None:
        return "ended with no exit code known"
    if code < 0:
        try:
            name = signal.Signals(-code).name
        except ValueError:
            name = f"signal {-code}"
        return f"was killed by {name} (exit {code})"
    return f"exited {code}"


def cpu_seconds(frames, started: dict) -> dict:
    """pid -> CPU seconds used, summed over the run's metrics frames.

    A frame's ``cpu`` is the % of one core since that pid's previous sample (its first one: since
    the process started, ``started[pid]``), so each reading times its own interval; the sum
    telescopes back to the CPU time the kernel counted. A pid whose start is unknown has its
    first reading left out rather than guessed.
    """
    last_t = dict(started)
    used: dict = {}
    for frame in frames:
        t = frame["t"]
        for pid, cpu in zip(frame["pid"], frame["cpu"]):
            if pid in last_t and cpu:
                used[pid] = used.get(pid, 0.0) + cpu / 100.0 * max(0.0, t - last_t[pid])
            else:
                used.setdefault(pid, 0.0)
            last_t[pid] = t
    return used


def _most_threads(frames, pid) -> int:
    return max((n for f in frames for p, n in zip(f["pid"], f.get("threads") or ()) if p == pid),
               default=1) or 1


def watch_verdict(run, state: str, main_code: int | None, error: str | None,
                  ended_at: float) -> dict:
    """A watched program's headline Finding: how it ended, and its busiest fact."""
    duration = max(0.0, ended_at - run.started_at)
    # Paths by their last part: "python3 busy.py" reads on a projector, /home/... does not.
    program = " ".join(os.path.basename(a) if os.sep in a else a for a in run.command or [])
    program = (program[:57] + "…" if len(program) > 60 else program) or run.title
    count = len(run.processes)
    if state == "stopped":
        how = f"was stopped ({error})" if error else "was stopped"
    else:
        how = _how_it_ended(main_code)
    text = f"{program} {how} after {duration:.2f} s with {count} process{'es' if count != 1 else ''}"
    starts = {pid: p["started_at"] for pid, p in run.processes.items() if p.get("started_at")}
    used = {pid: v for pid, v in cpu_seconds(run.frames, starts).items() if pid in run.processes}
    busiest = max(used, key=used.get, default=None)
    if busiest is not None and used[busiest] > 0:
        proc = run.processes[busiest]
        lived = max(0.0, (proc.get("ended_at") or ended_at) - (proc.get("started_at") or run.started_at))
        # The kernel counts CPU time in clock ticks (10 ms): a short life can read a tick more
        # than it had. No process uses more than its threads could in the time it lived.
        seconds = min(used[busiest], lived * _most_threads(run.frames, busiest))
        label = proc.get("name") or proc.get("role") or "process"
        text += (f"; the busiest, {label} (pid {busiest}), used {seconds:.2f} s of CPU "
                 f"in the {lived:.2f} s it lived")
        value = round(seconds, 2)
    else:
        printed: dict = {}
        for line in run.output:
            printed[line["pid"]] = printed.get(line["pid"], 0) + 1
        top = max(printed, key=printed.get, default=None)
        if top is not None:
            text += f"; none was measured using CPU, pid {top} printed most ({printed[top]} lines)"
        value = 0.0
    return {"key": "verdict", "value": value, "unit": "s", "text": text + ".", "headline": True}
