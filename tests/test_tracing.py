"""Tracing: events of the right kind, from the right process, paired, cheap, and pausable."""
from __future__ import annotations

import pickle
import sys
import textwrap

import pytest

from mpdash.inrun import budget, channel, trace_pools
from tests.conftest import run_lesson, wait_until


def events(data, *kinds):
    return [e for e in data["events"] if e["kind"] in kinds]


def pids_by_role(data, role):
    return {p["pid"] for p in data["processes"] if p["role"] == role}


def test_queue_put_and_get_are_paired_across_processes(dashboard):
    data = run_lesson(dashboard, "queue")
    (put,), (get,) = events(data, "queue_put"), events(data, "queue_get")
    assert put["channel"] == get["channel"] == "Queue-1"
    assert put["msg"] and put["msg"] == get["msg"]
    assert put["pid"] in pids_by_role(data, "worker") and get["pid"] in pids_by_role(data, "main")
    assert put["detail"] == get["detail"] == "25"
    assert 0 < get["size"] < 64           # the pickled int, without our envelope
    assert put["t"] <= get["t"]
    assert put["depth"] == 1 and get["depth"] == 0


@pytest.mark.parametrize("start_method", ["fork", "spawn"])
def test_pipe_send_and_recv_are_paired(dashboard, start_method):
    data = run_lesson(dashboard, "pipe", {"start_method": start_method})
    (send,), (recv,) = events(data, "pipe_send"), events(data, "pipe_recv")
    assert send["channel"] == recv["channel"] == "Pipe-1"
    assert send["msg"] == recv["msg"] and send["size"] == recv["size"] > 0
    assert (send["end"], recv["end"]) == (1, 0)
    assert send["pid"] in pids_by_role(data, "worker")
    assert recv["pid"] in pids_by_role(data, "main")
    assert recv["detail"] == "[1, 2, 3]"


def test_internal_connections_are_not_traced(dashboard):
    data = run_lesson(dashboard, "pool-map")   # a Pool talks through pipes and SimpleQueues
    assert not events(data, "pipe_send", "pipe_recv", "queue_put", "queue_get")


def test_shared_writes_carry_cell_and_value(dashboard):
    data = run_lesson(dashboard, "shared-memory")
    writes = events(data, "shared_write")
    child = pids_by_role(data, "worker")
    assert all(w["pid"] in child for w in writes)
    value = [w for w in writes if w["channel"] == "Value-1"]
    assert [(w["index"], w["value"]) for w in value] == [(None, 15)]
    cells = [(w["index"], w["value"]) for w in writes if w["channel"] == "Array-1"]
    assert cells == [(0, 2), (1, 3), (2, 4)]


def test_pool_tasks_run_in_workers(dashboard):
    data = run_lesson(dashboard, "pool-map", {"items": 6, "chunksize": 2})
    starts, ends = events(data, "task_start"), events(data, "task_end")
    assert len(starts) == len(ends) == 3
    workers = pids_by_role(data, "worker")
    by_msg = {e["msg"]: e for e in starts}
    for end in ends:
        start = by_msg[end["msg"]]
        assert start["pid"] == end["pid"] and end["pid"] in workers
        assert start["t"] <= end["t"] and end["ok"] is True and end["items"] == 2
        assert start["channel"] == "Pool-1"
    assert sorted(e["index"] for e in starts) == [0, 1, 2]


def test_untraced_sections_send_no_per_message_events(dashboard):
    data = run_lesson(dashboard, "race-condition", {"times": 20_000})
    assert not events(data, "shared_write", "traffic")
    assert [m["label"] for m in data["marks"]][:1] == ["untraced"]
    data = run_lesson(dashboard, "pipe", {"mode": "ping-pong", "round_trips": 300})
    assert len(events(data, "pipe_send")) == 4 + 3   # the traced warm-up only
    assert not events(data, "traffic")


def test_pause_reaches_spawned_children(dashboard):
    data = run_lesson(dashboard, "race-condition",
                      {"times": 2000, "processes": 2, "start_method": "spawn"})
    assert data["state"] == "finished", data["error"]
    assert not events(data, "shared_write", "traffic")


def test_high_rate_traffic_is_summarised_and_nothing_is_lost(dashboard):
    items = 3000
    data = run_lesson(dashboard, "queue", {"items": items})
    assert data["state"] == "finished", data["error"]
    puts, gets = events(data, "queue_put"), events(data, "queue_get")
    traffic = events(data, "traffic")
    assert traffic and all(t["channel"] == "Queue-1" for t in traffic)
    assert len(puts) < items / 2
    assert len(puts) + sum(t.get("puts", 0) for t in traffic) == items
    assert len(gets) + sum(t.get("gets", 0) for t in traffic) == items
    assert all(len(t["detail"]) <= 200 for t in traffic)
    assert {g["msg"] for g in gets} <= {p["msg"] for p in puts}


def test_a_busy_pool_ended_by_with_counts_every_task(dashboard, tmp_path):
    """`with Pool()` SIGTERMs its workers as soon as the results are in; the counts of a worker
    summarising its tasks must reach the server first (this test failed 2 runs in 3 before)."""
    script = tmp_path / "busy_pool.py"
    script.write_text(textwrap.dedent("""
        from multiprocessing import Pool

        def square(x):
            return x * x

        if __name__ == "__main__":
            with Pool(3) as pool:
                results = [pool.apply_async(square, (i,)) for i in range(1500)]
                total = sum(r.get() for r in results)
                total += sum(pool.map(square, range(1500), chunksize=1))
            print(total)
    """))
    expected = 2 * sum(i * i for i in range(1500))
    for _ in range(3):
        run = dashboard.engine.start_command([sys.executable, str(script)])
        dashboard.engine.wait(run.id, timeout=60)
        data = dashboard.hub.snapshot(run)
        assert data["state"] == "finished", data["error"]
        assert [l["text"] for l in data["output"]] == [str(expected)]
        traffic = events(data, "traffic")
        assert traffic, "3000 tasks in well under a second: the workers must summarise"
        for kind, counter in (("task_start", "tasks_started"), ("task_end", "tasks_ended")):
            assert len(events(data, kind)) + sum(t.get(counter, 0) for t in traffic) == 3000


def _interrupted_wait_leaves_the_lock_free() -> int:
    """In a forked child: Ctrl-C (a 3 ms timer's KeyboardInterrupt) while the tap waits for a
    task; 0 if the interrupt came out of get() and the lock is free, else what went wrong."""
    import multiprocessing
    import os
    import signal
    import time
    queue = multiprocessing.get_context("fork").SimpleQueue()
    tap = trace_pools.TaskTap(queue, "Pool-1", lambda task, chan, poll: task, send_when_idle=True)
    # A forked child of its own: set, never restored (the child ends here).
    budget.state.pid = os.getpid()
    budget.state.traffic = {"Pool-1": {"bytes": 0, "tasks_ended": 5}}
    budget.state.traffic_since = time.monotonic()   # sent a moment ago
    channel.send = lambda kind, **fields: None
    signal.signal(signal.SIGALRM, signal.default_int_handler)
    signal.setitimer(signal.ITIMER_REAL, 0.003)   # while it waits for a task
    try:
        tap.get()
        return 2                                  # get() returned: no task was there
    except KeyboardInterrupt:
        pass
    if not queue._rlock.acquire(False):
        return 3                                  # the queue's lock was left held
    return 0


def test_an_interrupted_wait_for_a_task_leaves_the_pool_lock_free():
    """Ctrl-C reaches every worker: like CPython's SimpleQueue.get, the tap must not die
    holding the task queue's lock (the other workers and terminate() would wait forever).
    The interrupt is raised in a forked child: a KeyboardInterrupt that lands anywhere else
    than expected can only end that child, never the pytest session."""
    import os
    child = os.fork()
    if child == 0:   # pragma: no cover (the child's exit status is the result)
        code = 1
        try:
            code = _interrupted_wait_leaves_the_lock_free()
        finally:
            os._exit(code)
    reaped = []

    def ended():
        pid, status = os.waitpid(child, os.WNOHANG)
        if pid:
            reaped.append(status)
        return reaped

    wait_until(ended, timeout=20)
    if not reaped:
        os.kill(child, 9)
        os.waitpid(child, 0)
        pytest.fail("the interrupted get() never returned (the lock wait hung)")
    code = os.waitstatus_to_exitcode(reaped[0])
    assert code == 0, {1: "raised", 2: "get() returned", 3: "the lock was left held"}.get(code, code)


def test_executor_tasks_and_user_script(dashboard, tmp_path):
    script = tmp_path / "user_program.py"
    script.write_text(textwrap.dedent("""
        from concurrent.futures import ProcessPoolExecutor
        from multiprocessing import JoinableQueue, Process

        def cube(n):
            return n ** 3

        def fill(q):
            q.put("hello")

        if __name__ == "__main__":
            with ProcessPoolExecutor(2) as ex:
                print(list(ex.map(cube, [1, 2, 3])))
            q = JoinableQueue()
            p = Process(target=fill, args=(q,))
            p.start()
            print(q.get())
            p.join()
    """))
    run = dashboard.engine.start_command([sys.executable, str(script)])
    dashboard.engine.wait(run.id, timeout=60)
    data = dashboard.hub.snapshot(run)
    assert data["state"] == "finished", data["error"]
    assert [l["text"] for l in data["output"]] == ["[1, 8, 27]", "hello"]
    starts, ends = events(data, "task_start"), events(data, "task_end")
    assert len(starts) == len(ends) == 3
    assert all(e["channel"] == "Executor-1" and e["pid"] != run.main_pid for e in starts)
    assert sorted(e["detail"] for e in starts) == ["cube over [1]", "cube over [2]",
                                                   "cube over [3]"]
    assert sorted(e["detail"] for e in ends) == ["[1]", "[27]", "[8]"]   # one chunk each
    # the executor's own call queue is not shown as user messages; the user's queue is
    (put,) = events(data, "queue_put")
    assert put["channel"] == "Queue-1" and put["detail"] == "'hello'"


def test_paused_is_a_context_manager_that_restores():
    assert not budget.is_paused()
    with budget.paused():
        assert budget.is_paused()
        with budget.paused():
            assert budget.is_paused()
        assert budget.is_paused()
    assert not budget.is_paused()


def test_program_semantics_and_names_survive_tracing(dashboard, tmp_path):
    script = tmp_path / "semantics.py"
    script.write_text(textwrap.dedent("""
        import pickle
        import multiprocessing as mp
        from multiprocessing.pool import ThreadPool

        def sq(x):
            return x * x

        def child(c):
            c.send({"a": 1})

        if __name__ == "__main__":
            a, b = mp.Pipe()
            p = mp.Process(target=child, args=(b,))
            p.start()
            print(pickle.loads(a.recv_bytes()))   # read another way than recv(): same object
            p.join()
            for _ in range(2):
                with ThreadPool(2) as tp:
                    tp.map(sq, [1, 2])
            arr = mp.Array("i", 4)
            arr[-1] = 7
    """))
    run = dashboard.engine.start_command([sys.executable, str(script)])
    dashboard.engine.wait(run.id, timeout=60)
    data = dashboard.hub.snapshot(run)
    assert data["state"] == "finished", data["error"]
    assert [l["text"] for l in data["output"]] == ["{'a': 1}"]
    (send,) = events(data, "pipe_send")
    assert send["size"] == len(pickle.dumps({"a": 1}))   # the program's bytes, not the envelope
    starts = events(data, "task_start")
    assert sorted({e["channel"] for e in starts}) == ["ThreadPool-1", "ThreadPool-2"]
    assert len({e["msg"] for e in starts}) == 4
    (write,) = events(data, "shared_write")
    assert write["index"] == 3 and write["value"] == 7


def test_a_signal_handler_that_puts_does_not_deadlock(dashboard, tmp_path):
    # The handler runs in the thread it interrupts, possibly while tracing or the probe holds
    # a lock there; a plain Lock then waits forever. The timer is re-armed at the end of each
    # handler, not repeating: a repeating 3 ms timer on a loaded machine interrupts a handler
    # inside CPython's own Queue.put (its non-reentrant _notempty lock) and dies of
    # RecursionError without mpdash too (3 runs in 8 of plain python under load).
    script = tmp_path / "alarm.py"
    script.write_text(textwrap.dedent("""
        import multiprocessing as mp, signal, time
        ticks, running = 0, True

        def on_alarm(*_):
            global ticks
            q.put("tick")
            ticks += 1
            if running:
                signal.setitimer(signal.ITIMER_REAL, 0.003)

        if __name__ == "__main__":
            q, arr = mp.Queue(), mp.Array("i", 8)
            signal.signal(signal.SIGALRM, on_alarm)
            signal.setitimer(signal.ITIMER_REAL, 0.003)
            end, i = time.time() + 2, 0
            while time.time() < end:
                arr[i % 8] = i
                i += 1
            running = False
            signal.setitimer(signal.ITIMER_REAL, 0)
            got = sum(1 for _ in range(ticks) if q.get(timeout=10))
            print("ticks received", got == ticks)
    """))
    run = dashboard.engine.start_command([sys.executable, str(script)])
    dashboard.engine.wait(run.id, timeout=60)
    data = dashboard.hub.snapshot(run)
    assert data["state"] == "finished", [l["text"] for l in data["output"]][:20]
    assert [l["text"] for l in data["output"]] == ["ticks received True"]
    assert data["processes"][0]["exitcode"] == 0


def test_event_text_of_a_big_object_is_built_from_a_few_items():
    # The text is cut to MAX_DETAIL anyway; building a full repr of what a program puts on a
    # queue would cost it as much again as pickling it.
    from mpdash.inrun.shortrepr import short_repr
    from mpdash.protocol import MAX_DETAIL
    calls = []

    class Item:
        def __repr__(self):
            calls.append(1)
            return "item"

    text = short_repr([Item() for _ in range(100_000)])
    assert text.startswith("[item, item") and len(text) <= MAX_DETAIL
    assert len(calls) < 100
    assert short_repr({"b": 1, "a": 2}) == "{'b': 1, 'a': 2}"   # the order the program prints
    assert short_repr(b"x" * 10_000).startswith("b'xxx") and len(short_repr(b"x" * 10_000)) <= MAX_DETAIL
