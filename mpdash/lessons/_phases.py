"""Numbers only the server sees: CPU and memory of a run's processes between two ctx.mark()s.

Used by lessons' ``analyze(run)``. Frames hold, per process, CPU % of one core since that
process's previous sample; one frame's window can be a few ms (a birth pokes the sampler), so a
peak is taken over windows of at least ``min_window`` s, weighted by time.
"""
from __future__ import annotations


def phase_bounds(run, label: str) -> tuple[float, float] | None:
    """(start, end) of the phase that a mark ``label`` opens; it ends at the next mark."""
    marks = sorted(run.marks, key=lambda m: m[0])
    for i, (t, name, _) in enumerate(marks):
        if name == label:
            end = marks[i + 1][0] if i + 1 < len(marks) else float("inf")
            return t, end
    return None


def peak_cpu(run, bounds, min_window: float = 0.3) -> float | None:
    """Peak total CPU % of the run's processes in the phase (100 = one core busy)."""
    start, end = bounds
    frames = [f for f in run.frames if start < f["t"] <= end + 0.05]
    if not frames:
        return None
    previous = [f for f in run.frames if f["t"] <= start]
    last_t = previous[-1]["t"] if previous else start
    spans = []
    for f in frames:
        spans.append((max(f["t"] - last_t, 1e-3), sum(f["cpu"])))
        last_t = f["t"]
    best = None
    for i in range(len(spans)):
        weight = busy = 0.0
        for dt, total in reversed(spans[: i + 1]):
            weight += dt
            busy += dt * total
            if weight >= min_window:
                break
        if weight >= min_window or best is None:
            avg = busy / weight
            best = avg if best is None else max(best, avg)
    return round(best, 1)


def peak_rss_kib(run, bounds, pids) -> dict:
    """Largest RSS (KiB) seen for each of ``pids`` during the phase."""
    start, end = bounds
    peak: dict = {}
    for f in run.frames:
        if not start <= f["t"] <= end + 0.05:
            continue
        for pid, rss in zip(f["pid"], f["rss"]):
            if pid in pids:
                peak[pid] = max(peak.get(pid, 0), rss)
    return peak
