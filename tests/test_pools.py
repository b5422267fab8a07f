"""Pool insights (issue 14): the Run's ``pools`` and their findings, from the run's own events."""
from __future__ import annotations

import os
import sys

import pytest

from mpdash import pools as insights
from mpdash.dashboard import Dashboard
from mpdash.runs import PROJECT_ROOT
from mpdash.state import Limits, Proc
from mpdash.store import Store
from tests.leaks import assert_none_left

PROGRAMS = os.path.join(PROJECT_ROOT, "tests", "programs")


def _task(pid, msg, start, seconds, detail, channel="Pool-1", **extra):
    """A task reported one by one: its start and its end, as tracing sends them."""
    return [{"kind": "task_start", "pid": pid, "channel": channel, "msg": msg, "t": start,
             "detail": detail, "items": 1, **extra},
            {"kind": "task_end", "pid": pid, "channel": channel, "msg": msg,
             "t": start + seconds, "seconds": seconds, "detail": "None", "items": 1, "ok": True,
             **extra}]


def _procs(*pids, parent=100):
    out = {parent: Proc(pid=parent, role="main", started_at=0.0)}
    for pid in pids:
        out[pid] = Proc(pid=pid, ppid=parent, role="worker", start_method="fork", started_at=0.5)
    return out


def test_busy_idle_spread_and_slowest_of_one_pool():
    events = (_task(1, "Pool-1/0/0", 1.0, 0.5, "work(0)") + _task(1, "Pool-1/0/1", 1.5, 0.5, "work(1)")
              + _task(2, "Pool-1/0/2", 1.0, 0.2, "work(2)") + _task(2, "Pool-1/0/3", 1.2, 0.8, "work('slow')"))
    pools, found = insights.insights(events, _procs(1, 2, 3), cores=2)
    (pool,) = pools
    assert pool["id"] == "Pool-1" and pool["kind"] == "Pool"
    assert pool["span_s"] == pytest.approx(1.0) and pool["tasks"] == 4 and pool["timed"] == 4
    by_pid = {w["pid"]: w for w in pool["workers"]}
    assert by_pid[1]["tasks"] == 2 and by_pid[1]["busy_s"] == pytest.approx(1.0)
    assert by_pid[2]["busy_s"] == pytest.approx(1.0) and by_pid[2]["idle_s"] == pytest.approx(0.0)
    # pid 3: a worker of the same parent, started during the pool's life, that ran nothing
    assert by_pid[3] == {"pid": 3, "thread": None, "tasks": 0, "items": 0, "busy_s": 0.0,
                         "idle_s": pytest.approx(1.0)}
    assert pool["busy"] == pytest.approx(2 / 3, abs=1e-3)
    assert pool["task_s"]["mean"] == pytest.approx(0.5)
    assert pool["task_s"]["max"] == pytest.approx(0.8) and pool["task_s"]["p50"] == pytest.approx(0.5)
    assert pool["slowest"][0] == {"pid": 2, "seconds": 0.8, "detail": "work('slow')"}
    assert len(pool["slowest"]) == 3
    text = {f["key"]: f["text"] for f in found}
    assert "busy 66.7 % of the pool's 1.00 s" in text["pool_busy"]
    assert "4 tasks went to 3 workers, 0 to 2 each" in text["pool_spread"]
    assert "1 worker got none" in text["pool_spread"] and "unevenly" in text["pool_spread"]
    assert text["pool_slowest"] == ("Pool-1: the slowest task took 800.0 ms (1.6× the median), "
                                    "in worker 2: work('slow').")
    for f in found:     # the value, as printed, is in the sentence
        assert str(f["value"]) in f["text"], f
    assert "pool_dispatch" not in text        # the work dwarfs the messages


def test_dispatch_costlier_than_the_work_says_batch_them():
    events = []
    for worker in (1, 2):
        t = 1.0
        for i in range(20):
            events += _task(worker, f"Pool-1/0/{worker}.{i}", t, 0.0002, f"f({i})")
            t += 0.0002 + 0.0005          # 0.5 ms between one task's end and the next start
    pools, found = insights.insights(events, _procs(1, 2))
    (pool,) = pools
    assert pool["dispatch_s"] == pytest.approx(0.0005, rel=1e-3)
    dispatch = [f for f in found if f["key"] == "pool_dispatch"]
    assert dispatch and dispatch[0]["text"] == (
        "Pool-1: each task took 0.20 ms and each message 0.50 ms (2.5× the work): batch them "
        "(a larger chunksize sends more work per message).")


def test_summarised_tasks_count_with_their_seconds_and_slowest():
    events = _task(1, "Pool-1/0/0", 1.0, 0.01, "f(0)")
    events.append({"kind": "traffic", "pid": 1, "channel": "Pool-1", "t": 2.0, "interval": 1.0,
                   "tasks_started": 99, "tasks_ended": 99, "task_s": 0.6, "items": 99,
                   "slowest_s": 0.05, "slowest": "f(42)"})
    events.append({"kind": "traffic", "pid": 1, "channel": "Queue-1", "t": 2.0, "puts": 3})
    (pool,), _ = insights.insights(events, _procs(1))
    assert pool["tasks"] == 100 and pool["timed"] == 1 and pool["items"] == 100
    assert pool["workers"][0]["busy_s"] == pytest.approx(0.61)
    assert pool["slowest"][0] == {"pid": 1, "seconds": 0.05, "detail": "f(42)"}
    assert pool["task_s"]["max"] == pytest.approx(0.05)


def test_thread_pool_workers_are_told_apart_by_thread():
    events = (_task(7, "ThreadPool-1/0/0", 1.0, 0.1, "g(0)", "ThreadPool-1", tid=71)
              + _task(7, "ThreadPool-1/0/1", 1.0, 0.1, "g(1)", "ThreadPool-1", tid=72))
    (pool,), found = insights.insights(events, _procs())
    assert pool["kind"] == "ThreadPool"
    assert [(w["pid"], w["thread"]) for w in pool["workers"]] == [(7, 71), (7, 72)]
    assert pool["busy"] == pytest.approx(1.0)
    assert any("2 threads" in f["text"] for f in found)


def test_no_pool_no_insights():
    assert insights.insights([{"kind": "queue_put", "channel": "Queue-1", "t": 1.0}], {}) == ([], [])


def test_every_pool_of_a_watched_program_is_in_the_run_and_its_history(tmp_path):
    data_dir = str(tmp_path / "history")
    with Dashboard(Limits(), data_dir=data_dir) as dash:
        run = dash.engine.start_command([sys.executable, os.path.join(PROGRAMS, "three_pools.py")])
        dash.engine.wait(run.id, timeout=90)
        data = dash.hub.snapshot(run)
    assert_none_left(os.getpid())
    assert data["state"] == "finished", data["error"]
    by_kind = {p["kind"]: p for p in data["pools"]}
    assert set(by_kind) == {"Pool", "ThreadPool", "ProcessPoolExecutor"}, data["pools"]
    assert by_kind["Pool"]["tasks"] == 12 and len(by_kind["Pool"]["workers"]) == 3
    assert by_kind["ThreadPool"]["tasks"] == 8
    threads = by_kind["ThreadPool"]["workers"]
    assert len(threads) == 2 and len({w["pid"] for w in threads}) == 1     # one pid, 2 threads
    assert all(w["thread"] for w in threads) and sum(w["tasks"] for w in threads) == 8
    assert by_kind["ProcessPoolExecutor"]["tasks"] >= 1     # map chunks the 6 calls
    slow = by_kind["Pool"]["slowest"][0]
    assert slow["seconds"] >= 0.29 and slow["detail"] == "work over [5]", slow   # a map chunk
    keys = {f["key"] for f in data["findings"]}
    assert {"pool_busy", "pool_spread", "pool_slowest"} <= keys
    assert any(k.startswith("pool_busy.") for k in keys)    # the second and third pools
    # Kept with the run: a server started on the same folder has it back.
    store = Store(data_dir)
    try:
        runs, _ = store.load()
    finally:
        store.close()
    (stored,) = [r for r in runs if r.id == run.id]
    assert stored.pools == data["pools"]


def test_a_busy_pools_summarised_tasks_keep_their_seconds(dashboard):
    """Past 300 events a second a worker counts its tasks: their time and slowest still count."""
    run = dashboard.engine.start_command(
        [sys.executable, os.path.join(PROGRAMS, "pool40.py"), "2", "3000", "0.05"])
    dashboard.engine.wait(run.id, timeout=90)
    data = dashboard.hub.snapshot(run)
    assert data["state"] == "finished", data["error"]
    (pool,) = data["pools"]
    assert pool["tasks"] == 3000 and pool["items"] == 3000
    assert pool["timed"] < pool["tasks"]                      # some were only counted
    summaries = [e for e in data["events"] if e["kind"] == "traffic" and e.get("tasks_ended")]
    assert summaries and all(e["task_s"] > 0 and e["slowest"].startswith("spin over")
                             for e in summaries)
    busy = sum(w["busy_s"] for w in pool["workers"])
    assert busy >= 3000 * 0.00005                             # every task spun 0.05 ms at least
    assert pool["task_s"]["mean"] == pytest.approx(busy / 3000, abs=1e-6)   # rounded to µs


def _messy_events(seed: int) -> list:
    """Two pools' events as a busy run sends them: tasks one by one, summaries, a ThreadPool,
    ties, and one worker's events out of time order."""
    import random
    rng = random.Random(seed)
    events, clock = [], {pid: 1.0 for pid in (1, 2, 3)}
    for i in range(300):
        pid = rng.choice((1, 2, 3))
        seconds = rng.choice((0.01, 0.02, 0.02, rng.uniform(0.001, 0.3)))
        events += _task(pid, f"Pool-1/0/{i}", clock[pid], seconds, f"f({i})")
        clock[pid] += seconds + rng.choice((0.0, 0.001, 0.004))
        if i % 40 == 39:
            events.append({"kind": "traffic", "pid": pid, "channel": "Pool-1", "t": clock[pid],
                           "interval": 0.5, "tasks_started": 9, "tasks_ended": 9,
                           "task_s": rng.uniform(0.1, 0.6), "items": 9,
                           "slowest_s": rng.choice((0.3, 0.02)), "slowest": f"f(s{i})"})
        if i % 50 == 7:
            events += _task(9, f"ThreadPool-1/0/{i}", 1.0 + i / 100, 0.02, f"g({i})",
                            "ThreadPool-1", tid=90 + i % 2)
    late = _task(2, "Pool-1/0/late", 1.5, 0.01, "f(late)")     # a worker's late report
    return events[:400] + late + events[400:]


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_the_live_fold_fed_in_batches_builds_the_pools_of_all_the_events(seed):
    """A live run's pools (engine/livepools.py) are the same fold fed a batch at a time and
    rebuilt after each: at the end they equal the run's end's pools, and on the way every one
    obeys physics (a worker busy at most the pool's life; busy 0-1)."""
    import random
    events = _messy_events(seed)
    procs = _procs(1, 2, 3, 4)
    collector, rng, at = insights.Collector(), random.Random(seed), 0
    while at < len(events):
        step = rng.randint(1, 60)
        collector.feed(events[at:at + step])
        at += step
        for pool in insights.build(collector.pools, procs):
            assert pool["busy"] is None or 0.0 <= pool["busy"] <= 1.0, pool
            assert pool["tasks"] == sum(w["tasks"] for w in pool["workers"])
            for w in pool["workers"]:
                assert 0.0 <= w["busy_s"] and 0.0 <= w["idle_s"], w
                assert w["busy_s"] + w["idle_s"] <= pool["span_s"] + 2e-6, (w, pool["span_s"])
    assert insights.build(collector.pools, procs) == insights.pools_of(events, procs)
    assert insights.build(collector.pools, procs) == insights.pools_of(events, procs)  # no change


def test_a_live_runs_pools_are_published_when_they_change_and_never_after_its_end():
    import types
    from mpdash.engine import livepools
    from mpdash.state import Hub, Run
    hub = Hub()
    run = Run(id="r1", lesson="pool-map", title="t", params={})
    hub.add_run(run)
    hub.set_state(run, "running")
    run.processes.update(_procs(1, 2))
    sent = []
    hub.subscribe(lambda name, payload: sent.append((name, payload)))
    core, live = types.SimpleNamespace(hub=hub), livepools.LivePools()
    assert not livepools.refresh(core, run, live) and run.pools == [] and not sent   # no task yet
    for event in _task(1, "Pool-1/0/0", 1.0, 0.5, "f(0)"):
        hub.add_event(run, event)
    assert livepools.refresh(core, run, live)
    (name, message), = [m for m in sent if m[0] == "run"]
    assert message["pools"] == run.pools == insights.pools_of(list(run.events), run.processes)
    assert message["pools"][0]["tasks"] == 1
    sent.clear()
    assert not livepools.refresh(core, run, live) and not sent          # nothing changed
    for event in _task(2, "Pool-1/0/1", 1.2, 0.5, "f(1)"):
        hub.add_event(run, event)
    hub.set_state(run, "finished", pools=["the final computation"])
    assert not livepools.refresh(core, run, live)
    assert run.pools == ["the final computation"]                      # the end's stays
