"""§4: the same work on N threads, then on N processes."""
import os
import time
from multiprocessing import Process
from threading import Thread


def count_down(n):
    while n > 0:  # pure Python: holds the GIL the whole time
        n -= 1


def wait_for_io(seconds):
    time.sleep(seconds)  # releases the GIL while it waits


def rss_bytes():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def run_all(workers):
    started = time.perf_counter()
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    return time.perf_counter() - started


def main(ctx, workers=os.cpu_count() or 2, work=60_000_000, io_bound=False, seconds=0.5,
         start_method="fork"):
    job, arg = (wait_for_io, seconds) if io_bound else (count_down, work)

    ctx.mark("threads", workers=workers)
    before = rss_bytes()
    threads = [Thread(target=job, args=(arg,)) for _ in range(workers)]
    started = time.perf_counter()
    for t in threads:
        t.start()
    per_thread = max(0, rss_bytes() - before) // workers  # every thread exists now
    for t in threads:
        t.join()
    threads_s = time.perf_counter() - started

    ctx.mark("processes", workers=workers)
    processes_s = run_all([Process(target=job, args=(arg,)) for _ in range(workers)])
    ctx.mark("done")

    speedup = threads_s / processes_s
    print(f"{workers} threads: {threads_s:.2f} s, {workers} processes: {processes_s:.2f} s")
    ctx.finding("speedup", round(speedup, 2),
                f"{workers} processes finished in {processes_s:.2f} s, "
                + ("about as fast as" if 0.95 <= speedup < 1.05 else
                   f"{speedup:.1f}× faster than" if speedup >= 1 else
                   f"{1 / speedup:.1f}× slower than")
                + f" {workers} threads ({threads_s:.2f} s) on "
                f"{'I/O-bound (waiting)' if io_bound else 'CPU-bound (pure computing)'} work.",
                unit="×", headline=True)
    ctx.finding("rss_per_thread_bytes", per_thread,
                f"Each thread added {per_thread / 1024:.0f} KiB to the main process's RSS "
                f"(its stack pages, touched so far).", unit="B")
    return {"threads_s": round(threads_s, 3), "processes_s": round(processes_s, 3)}


from mpdash.lessons import Lesson, Param, start_method_param  # noqa: E402
from mpdash.lessons._phases import peak_cpu, peak_rss_kib, phase_bounds  # noqa: E402


def analyze(run):
    """Peak CPU per phase and memory per process, from the sampler's frames."""
    found = []
    cores = os.cpu_count() or 1
    for phase in ("threads", "processes"):
        bounds = phase_bounds(run, phase)
        peak = peak_cpu(run, bounds) if bounds else None
        if peak is None:
            continue
        found.append({"key": f"{phase}_peak_cpu", "value": peak, "unit": "%",
                      "text": f"While the {phase} ran, the run's processes used at most "
                              f"{peak:.0f}% CPU ({peak / 100:.1f} of {cores} cores)."})
    # Which CPython ran it and whether it had a GIL (the main's own word, the Run's python):
    # what decides whether the threads above could use more than one core.
    python = getattr(run, "python", None) or {}
    if python.get("version"):
        gil = bool(python.get("gil_enabled"))
        how = ("with a GIL, so its threads ran Python code one at a time" if gil else
               "without a GIL (free-threaded), so its threads could run Python code on several "
               "cores at once")
        found.append({"key": "gil_enabled", "value": gil,
                      "text": f"This run used CPython {python['version']} "
                              f"({python.get('executable')}), {how}."})
    bounds = phase_bounds(run, "processes")
    workers = {pid for pid, p in run.processes.items() if p["role"] == "worker"}
    peaks = peak_rss_kib(run, bounds, workers) if bounds else {}
    if peaks:
        per = int(sum(peaks.values()) / len(peaks) * 1024)
        found.append({"key": "rss_per_process_bytes", "value": per, "unit": "B",
                      "text": f"Each worker process had {per / 2**20:.1f} MiB resident (RSS, "
                              f"which also counts pages still shared with its parent), over "
                              f"{len(peaks)} processes sampled."})
    return found


LESSON = Lesson(
    id="threads-vs-processes", title="Threads vs processes", section="4",
    section_title="Process vs thread", order=1,
    summary="The same CPU-bound loop on N threads, then on N processes: watch the cores.",
    explanation=(
        "A CPython thread must hold the global interpreter lock (GIL) to run Python code, so N "
        "threads doing pure-Python arithmetic take turns on what amounts to one core. N "
        "processes each have their own interpreter and their own GIL, so the operating system "
        "can run them on N cores at once: the per-core chart fills up and the wall time drops. "
        "Switch on io_bound and the work becomes waiting (sleep releases the GIL): threads then "
        "do as well as processes and cost far less memory, which the findings measure too."
    ),
    predict="2 threads, then 2 processes, do the same pure-Python work on 2 cores. How many "
            "cores does each use, and which finishes first?",
    main=main,
    analyze=analyze,
    params=(
        Param("workers", "int", os.cpu_count() or 2, min=1, max=16,
              help="threads, then processes (default: this machine's cores)"),
        Param("work", "int", 60_000_000, min=100_000, max=200_000_000,
              help="count-down steps per worker (CPU-bound)"),
        Param("io_bound", "bool", False, help="sleep instead of computing: the I/O-bound case"),
        Param("seconds", "float", 0.5, min=0.05, max=5.0, unit="s",
              help="how long each worker sleeps when io_bound"),
        start_method_param(),
    ),
)
