"""The sampler and its /proc fast path: parsing, kept fds, short lives, frames only when useful."""
from __future__ import annotations

import os
import subprocess
import sys
import threading
import time

import pytest

from mpdash import procfs
from mpdash.dashboard import Dashboard
from mpdash.sampler import Sampler, next_tick_after
from mpdash.state import Hub, Run
from tests.leaks import assert_none_left

linux = pytest.mark.skipif(not procfs.available(), reason="needs /proc")

# A real line (kernel 6.x) whose command name holds a space and a ')'.
STAT_LINE = (b"4242 (we ird) S) R 4200 4242 4200 0 -1 4194304 1926 0 0 0 38 7 0 0 20 0 3 0 "
             b"119776 30000000 2500 18446744073709551615 1 1 0 0 0 0 0 16781312 2 0 0 0 17 1 0 "
             b"0 0 0 0 0 0 0 0 0 0 0 0\n")


def test_parse_stat_counts_fields_from_the_last_parenthesis():
    s = procfs.parse_stat(STAT_LINE)
    assert s.state == "R"
    assert s.cpu_ticks == 38 + 7
    assert s.threads == 3
    assert s.start_ticks == 119776
    assert s.rss_kib == 2500 * procfs.PAGE_KIB
    assert s.core == 1


@linux
def test_parse_stat_agrees_with_statm_and_the_thread_count():
    gate = threading.Event()
    extra = threading.Thread(target=gate.wait)
    extra.start()
    try:
        with open("/proc/self/stat", "rb") as f:
            s = procfs.parse_stat(f.read())
        with open("/proc/self/statm") as f:
            resident_pages = int(f.read().split()[1])
        assert s.state == "R"   # it is reading its own stat
        assert s.threads == threading.active_count()
        assert abs(s.rss_kib - resident_pages * procfs.PAGE_KIB) <= 1024   # 1 MiB of drift
        assert 0 <= s.core < (os.cpu_count() or 1)
    finally:
        gate.set()
        extra.join()


def test_parse_stat_rejects_garbage():
    with pytest.raises((ValueError, IndexError)):
        procfs.parse_stat(b"12 (x) R 1 2")


def test_parse_cpu_lines():
    data = (b"cpu  10 0 10 80 0 0 0 0 0 0\ncpu0 5 0 5 40 0 0 0 0 0 0\n"
            b"cpu1 5 0 5 30 10 0 0 0 0 0\nintr 1 2 3\n")
    assert procfs.parse_cpu_lines(data) == [(10, 50), (10, 50)]


@linux
def test_core_meter_gives_one_percentage_per_core():
    meter = procfs.CoreMeter()
    try:
        deadline = time.perf_counter() + 0.05
        while time.perf_counter() < deadline:
            pass
        cores = meter.percent()
    finally:
        meter.close()
    assert len(cores) == len(os.sched_getaffinity(0)) or len(cores) == os.cpu_count()
    assert all(0.0 <= c <= 100.0 for c in cores)


@linux
def test_kept_fd_reads_a_zombie_and_refuses_once_reaped():
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    reader = procfs.StatReader(keep_open=True)
    try:
        first = reader.read(child.pid)
        assert first is not None
        deadline = time.monotonic() + 10
        while reader.read(child.pid).state != "Z":   # exited, not reaped: still readable
            assert time.monotonic() < deadline
            time.sleep(0.01)
        child.wait()
        assert reader.read(child.pid) is None          # reaped: ESRCH, never a newcomer's data
        assert child.pid not in reader.pids()
    finally:
        reader.close()
        child.wait()


@linux
def test_fresh_open_reader_matches_kept_fd_reader():
    kept, fresh = procfs.StatReader(True), procfs.StatReader(False)
    try:
        a, b = kept.read(os.getpid()), fresh.read(os.getpid())
        assert a.start_ticks == b.start_ticks and a.state == b.state
        assert fresh.read(2 ** 22 + 12345) is None
    finally:
        kept.close()


def _hub_with_run() -> tuple[Hub, Run]:
    hub = Hub()
    run = Run(id="r1", lesson="x", title="x", params={})
    hub.add_run(run)
    return hub, run


@pytest.mark.parametrize("backend", ["procfs", "psutil"])
def test_a_process_seen_only_at_its_death_is_in_the_next_frame(backend):
    """Born and dead between two ticks: the engine's exit hook reads the zombie."""
    if backend == "procfs" and not procfs.available():
        pytest.skip("needs /proc")
    hub, run = _hub_with_run()
    sampler = Sampler(hub, live_pids=lambda: {}, hz=1, backend=backend)
    child = subprocess.Popen([sys.executable, "-c",
                              "import time\nt = time.process_time() + 0.2\n"
                              "while time.process_time() < t: pass"])
    try:
        os.waitid(os.P_PID, child.pid, os.WEXITED | os.WNOWAIT)   # dead, not reaped
        sampler.on_death(run, child.pid)
    finally:
        child.wait()
    frame = sampler.sample()
    sampler.backend.close()
    assert frame is not None and frame["pid"] == [child.pid]
    assert frame["status"] == "Z"
    assert frame["cpu"][0] > 0          # its whole life's CPU over its whole life
    assert run.frames[-1]["pid"] == [child.pid]
    assert sampler.sample() is None     # gone, nothing live, nobody watching: no frame


@linux
def test_frames_are_kept_but_pushed_only_while_someone_watches():
    hub, run = _hub_with_run()
    pushed = []
    hub.subscribe(lambda name, payload: pushed.append(name) if name == "metrics" else None)
    sampler = Sampler(hub, live_pids=lambda: {run.id: [os.getpid()]}, hz=10)
    try:
        assert sampler.sample()["pid"] == [os.getpid()]
        assert pushed == [] and len(run.frames) == 1
        hub.viewers = 1
        sampler.sample()
        assert pushed == ["metrics"] and len(run.frames) == 2
        sampler._prev.clear()
        empty = Sampler(hub, live_pids=lambda: {}, hz=10)
        assert empty.sample()["pid"] == []          # a viewer still gets the cores
        hub.viewers = 0
        assert empty.sample() is None
        empty.backend.close()
    finally:
        sampler.backend.close()


@linux
def test_an_ended_run_gains_no_frames():
    """A sample that read the run's pids just before the run ended must not add to it."""
    hub, run = _hub_with_run()
    sampler = Sampler(hub, live_pids=lambda: {run.id: [os.getpid()]}, hz=10)
    try:
        sampler.sample()
        assert len(run.frames) == 1
        hub.set_state(run, "finished", ended_at=time.time())
        assert sampler.sample()["pid"] == [os.getpid()]   # the server-wide frame is taken
        assert len(run.frames) == 1                       # but the ended run keeps its own
    finally:
        sampler.backend.close()


@linux
def test_busy_process_shows_cpu_and_newborn_baseline_is_its_start():
    hub, run = _hub_with_run()
    child = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    sampler = Sampler(hub, live_pids=lambda: {run.id: [child.pid]}, hz=10)
    try:
        time.sleep(0.3)
        first = sampler.sample()
        time.sleep(0.3)
        second = sampler.sample()
    finally:
        child.kill()
        child.wait()
        sampler.backend.close()
    # A spinning process on a shared 2-core machine: only claim it clearly used CPU.
    assert first["cpu"][0] > 10 and second["cpu"][0] > 10
    assert first["threads"] == [1] and first["rss"][0] > 1000


def test_a_burst_of_births_does_not_hold_back_the_regular_frames():
    period, tick = 0.1, 1.0               # next regular frame due at 1.0
    for birth in (0.90, 0.91, 0.92, 0.93, 0.94):    # five births poke the sampler
        tick = next_tick_after(tick, birth, period, poked=True)
    assert tick == 1.0                    # still due on schedule
    assert next_tick_after(1.0, 1.0, period, poked=False) == pytest.approx(1.1)
    # A frame for a birth just before the tick: the next one no sooner than half a period on.
    assert next_tick_after(1.1, 1.09, period, poked=True) == pytest.approx(1.14)
    # A late wake-up does not try to catch up with frames it missed.
    assert next_tick_after(1.1, 1.5, period, poked=False) == 1.5


def test_actual_rate_is_measured_from_real_frames_at_the_configured_rate():
    """Two samplers side by side (the same load on both), at 4 and at 20 Hz: each measured
    rate follows its own setting (a sampler ignoring hz would show the same rate twice)."""
    hub, run = _hub_with_run()
    hub.viewers = 1
    slow = Sampler(hub, live_pids=lambda: {}, hz=4).start()
    fast = Sampler(hub, live_pids=lambda: {}, hz=20).start()
    try:
        time.sleep(2.3)    # actual_hz() counts the frames of the last ~2 s
        slow_rate, fast_rate = slow.actual_hz(), fast.actual_hz()
    finally:
        slow.stop()
        fast.stop()
    # A starved sampler drops frames (a lower rate), it never adds any: the configured rate
    # is a ceiling, and on a shared machine most of the frames still come.
    assert 2 <= slow_rate <= 4 * 1.25, slow_rate
    assert 10 <= fast_rate <= 20 * 1.25, fast_rate
    assert fast_rate > 2 * slow_rate, (slow_rate, fast_rate)


def test_every_process_of_a_short_lived_pool_appears_in_a_frame():
    """At 1 Hz, pool workers living well under a second are still sampled (birth + death)."""
    dash = Dashboard(hz=1)
    try:
        run = dash.engine.start_lesson("pool-map", {"workers": 3, "items": 6, "spin": 0.02})
        dash.engine.wait(run.id, timeout=60)
        assert run.state == "finished", run.error
        sampled, known = dash.hub.atomic(
            lambda: ({pid for frame in run.frames for pid in frame["pid"]}, set(run.processes)))
    finally:
        dash.close()
    assert_none_left(dash)
    assert known and known <= sampled, f"never sampled: {known - sampled}"


def test_system_reports_the_configured_and_the_measured_rate(client):
    system = client.get("/api/system").get_json()
    assert system["sample_hz"] == 10
    assert isinstance(system["sample_hz_actual"], (int, float)) and system["sample_hz_actual"] >= 0
    assert system["sampler"] == ("procfs" if procfs.available() else "psutil")


def test_a_main_waiting_while_its_thread_computes_is_running():
    """Issue 19: the stat letter is the main thread's ("S" in join()); the frame's `running`
    column says a thread of the process runs, and says nothing runs once all threads sleep."""
    busy = ("import threading, time\n"
            "stop = time.monotonic() + 20\n"
            "def spin():\n"
            "    while time.monotonic() < stop: pass\n"
            "t = threading.Thread(target=spin); t.start(); print('go', flush=True); t.join()\n")
    idle = "import threading; t = threading.Thread(target=input); t.start(); print('go', flush=True); t.join()\n"
    procs = [subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
             for code in (busy, idle)]
    try:
        for p in procs:
            assert p.stdout.readline().strip() == "go"
        time.sleep(0.2)
        hub = Hub()
        for name in ("busy", "idle"):
            hub.add_run(Run(id=name, lesson="x", title="x", params={}))
        sampler = Sampler(hub, live_pids=lambda: {"busy": [procs[0].pid], "idle": [procs[1].pid]})
        seen = {"busy": [], "idle": []}
        for _ in range(5):
            frame = sampler.sample()
            for name, p in zip(("busy", "idle"), procs):
                i = frame["pid"].index(p.pid)
                seen[name].append((frame["status"][i], frame["threads"][i], frame["running"][i]))
            time.sleep(0.05)
        sampler.backend.close()
    finally:
        for p in procs:
            p.kill()
            p.wait(timeout=5)
    # The spinning thread is R (running or runnable, even on a loaded machine) at every sample.
    assert all(threads == 2 and running == 1 for _, threads, running in seen["busy"]), seen
    assert any(status == "S" for status, _, _ in seen["busy"]), seen   # the main waits in join()
    assert all(status == "S" and running == 0 for status, _, running in seen["idle"]), seen
