"""Socket.IO with a real client over a real WebSocket against a served app."""

import pytest
import requests
import socketio

from tests.conftest import wait_until


@pytest.fixture
def sio(live_server):
    client = socketio.Client(reconnection=False)
    received = []
    for name in ("hello", "run", "proc", "metrics", "output", "event"):
        client.on(name, (lambda n: lambda data: received.append((n, data)))(name))
    client.connect(live_server, transports=["websocket"], wait_timeout=10)
    client.received = received
    yield client
    client.disconnect()


def test_transport_is_websocket_and_hello_comes_first(sio):
    assert sio.transport() == "websocket"
    assert wait_until(lambda: sio.received)
    name, hello = sio.received[0]
    assert name == "hello"
    assert {"seq", "system", "lessons", "runs"} <= set(hello) and "pool-map" in hello["lessons"]


def test_start_streams_the_whole_run(sio, live_server):
    ack = sio.call("start", {"lesson": "pool-map", "params": {"spin": 0.2}}, timeout=10)
    assert ack["state"] == "running"
    run_id = ack["id"]
    assert wait_until(lambda: any(n == "run" and d["id"] == run_id and d["state"] == "finished"
                                  for n, d in sio.received))
    msgs = sio.received
    seqs = [d["seq"] for _, d in msgs[1:]]
    assert seqs == sorted(seqs) and len(seqs) == len(set(seqs))
    procs = [d for n, d in msgs if n == "proc" and d["run"] == run_id]
    starts = {d["pid"] for d in procs if d["kind"] == "start"}
    exits = {d["pid"]: d for d in procs if d["kind"] == "exit"}
    assert len(starts) == 4 and set(exits) == starts
    assert all(e["exitcode"] is not None for e in exits.values())
    frames = [d for n, d in msgs if n == "metrics"]
    cores = requests.get(f"{live_server}/api/system", timeout=10).json()["cores"]
    assert frames
    for f in frames:   # docs/API.md "Frame": columns aligned by index
        assert len(f["pid"]) == len(f["cpu"]) == len(f["rss"]) == len(f["status"]) \
            == len(f["core"]) == len(f["threads"]), f
        assert len(f["cores"]) == cores and all(0 <= c <= 100 for c in f["cores"]), f
        assert all(round(c, 1) == c and c >= 0 for c in f["cpu"]), f["cpu"]    # one decimal
        assert all(0 <= c < cores for c in f["core"]) and all(t >= 1 for t in f["threads"]), f
        assert all(isinstance(r, int) and r >= 0 for r in f["rss"]), f["rss"]
    assert all(a["t"] < b["t"] and a["seq"] < b["seq"] for a, b in zip(frames, frames[1:]))
    assert any(set(f["pid"]) & starts for f in frames)
    assert any(n == "output" and d["text"] == "[1, 4, 9, 16, 25]" for n, d in msgs)


@pytest.mark.parametrize("payload", [None, 3, "pool-map", {"lesson": "nope"},
                                     {"lesson": "pool-map", "params": {"workers": -1}},
                                     {"lesson": "pool-map", "params": "x"},
                                     {"lesson": "pool-map", "python": "nope"},
                                     {"lesson": "pool-map", "python": "/usr/bin/python3"}])
def test_bad_start_gets_an_error_ack(sio, payload, dashboard):
    ack = sio.call("start", payload, timeout=5)
    # A Run carries "error" too (null while it runs): an error ack is no Run and a message.
    assert "id" not in ack and isinstance(ack["error"], str) and ack["error"], ack
    assert "status" not in ack    # 429 and 403 only for limits and viewers
    assert dashboard.hub.runs == {}


def test_stop_over_the_socket(sio, live_server):
    ack = sio.call("start", {"lesson": "process-target", "params": {"delay": 1.0, "count": 20}},
                   timeout=10)
    final = sio.call("stop", {"run": ack["id"]}, timeout=10)
    assert final["state"] == "stopped"
    assert requests.get(f"{live_server}/api/runs/{ack['id']}").json()["state"] == "stopped"
    unknown = sio.call("stop", {"run": "nope"}, timeout=5)
    assert "id" not in unknown and unknown["error"] == "unknown run", unknown


def test_a_start_over_a_limit_is_acked_with_status_429(live_server, dashboard):
    dashboard.hub.limits.max_runs = 1
    client = socketio.Client(reconnection=False)
    client.connect(live_server, transports=["websocket"], wait_timeout=10)
    try:
        first = client.call("start", {"lesson": "process-target", "params": {"delay": 1.0}},
                            timeout=10)
        assert first["state"] == "running"
        refused = client.call("start", {"lesson": "process-target"}, timeout=10)
        assert "id" not in refused and refused["status"] == 429, refused
        assert "at most 1 run" in refused["error"]
        assert list(dashboard.hub.runs) == [first["id"]]
        assert client.call("stop", {"run": first["id"]}, timeout=10)["state"] == "stopped"
    finally:
        client.disconnect()


def test_start_on_another_interpreter_by_its_id(sio, dashboard):
    """issue 12: ``start`` takes ``python``, an id of hello.system.pythons (never a path)."""
    assert wait_until(lambda: sio.received)
    listed = sio.received[0][1]["system"]["pythons"]
    chosen = listed[-1]
    ack = sio.call("start", {"lesson": "process-target", "python": chosen["id"]}, timeout=10)
    assert ack.get("id") and ack["error"] is None, ack
    run = dashboard.engine.wait(ack["id"], timeout=60)
    assert run.state == "finished" and run.python["version"] == chosen["version"]


PROC_FIELDS = ("ppid", "name", "role", "daemon", "orphan", "start_method", "exitcode", "end")


def test_the_proc_messages_tell_the_story_of_the_record(sio, live_server):
    """A viewer that only folds ``proc`` messages (start, then update, then exit; docs/API.md)
    ends with every process as GET /api/runs/<id> has it. Under forkserver a worker's parent is
    learnt after its ``start`` (the forkserver, from the worker's own hello): only an ``update``
    can tell the viewer."""
    ack = sio.call("start", {"lesson": "crash-isolation",
                             "params": {"workers": 3, "seconds": 0.6,
                                        "start_method": "forkserver"}}, timeout=10)
    run_id = ack["id"]
    assert wait_until(lambda: any(n == "run" and d["id"] == run_id and d["state"] == "finished"
                                  for n, d in sio.received), timeout=60)
    folded, first, before_exit = {}, {}, {}
    for name, msg in sio.received:
        if name == "proc" and msg["run"] == run_id:
            first.setdefault(msg["pid"], msg)
            assert msg["kind"] != "start" or folded.get(msg["pid"]) is None, msg
            assert msg["kind"] == "start" or msg["pid"] in folded, msg   # never before start
            if msg["kind"] == "exit":   # an exit carries the whole record: what came before?
                before_exit.setdefault(msg["pid"], dict(folded[msg["pid"]]))
            folded.setdefault(msg["pid"], {}).update({k: msg[k] for k in PROC_FIELDS})
    record = requests.get(f"{live_server}/api/runs/{run_id}", timeout=10).json()
    assert {p["pid"] for p in record["processes"]} == set(folded)
    for proc in record["processes"]:
        assert folded[proc["pid"]] == {k: proc[k] for k in PROC_FIELDS}, proc
    helper = next(p["pid"] for p in record["processes"] if p["name"] == "forkserver")
    workers = [p for p in record["processes"] if p["role"] == "worker"]
    assert len(workers) == 3 and all(p["ppid"] == helper for p in workers), workers
    # The worker's hello (parent: the forkserver) and its parent's ``spawned`` (name, start
    # method) race on two connections: whichever comes second is news only an update carries.
    # An update brings it while the worker lives, not only its exit message.
    learnt = ("ppid", "name", "start_method")
    assert all(any(first[p["pid"]][k] != p[k] for k in learnt) for p in workers), \
        [(first[p["pid"]], p) for p in workers]
    for p in workers:
        assert {k: before_exit[p["pid"]][k] for k in learnt} == {k: p[k] for k in learnt}, p


def test_a_live_pools_insights_arrive_while_it_runs(sio, live_server, dashboard):
    """docs/API.md "Pool": while a run is live its ``pools`` are refreshed (about once a second)
    and published as ``run`` messages; GET /api/runs/<id> has them too; the run's end replaces
    them with its final computation, from all its events."""
    from mpdash import pools as insights
    ack = sio.call("start", {"lesson": "pool-map",
                             "params": {"workers": 2, "items": 8, "spin": 1.0}}, timeout=10)
    run_id = ack["id"]

    def live_pools():
        return [d["pools"] for n, d in list(sio.received)
                if n == "run" and d["id"] == run_id and d["state"] == "running" and d["pools"]]

    assert wait_until(live_pools, timeout=30), "no pools arrived while the run was live"
    fetched = wait_until(lambda: requests.get(f"{live_server}/api/runs/{run_id}",
                                              timeout=10).json(), timeout=5)
    assert wait_until(lambda: any(n == "run" and d["id"] == run_id and d["state"] == "finished"
                                  for n, d in list(sio.received)), timeout=60)
    # Read ~3 s before the end (4 rounds of 1 s tasks): the current value, not [].
    assert fetched["state"] == "running" and fetched["pools"][0]["id"] == "Pool-1", fetched["state"]
    seen = live_pools()
    totals = [sum(w["tasks"] for w in p[0]["workers"]) for p in seen]
    assert totals == sorted(totals) and totals[0] < 8, totals   # grew, seen before the last task
    for pools in seen:
        (pool,) = pools
        assert 0 <= pool["busy"] <= 1 if pool["busy"] is not None else True
        for w in pool["workers"]:
            assert w["busy_s"] >= 0 and w["idle_s"] >= 0, w
            assert w["busy_s"] + w["idle_s"] <= pool["span_s"] + 2e-6, (w, pool)
    final = [d for n, d in sio.received if n == "run" and d["id"] == run_id
             and d["state"] == "finished"][-1]
    run = dashboard.hub.get(run_id)
    events, procs, frames = dashboard.hub.atomic(
        lambda: (list(run.events), dict(run.processes), list(run.frames)))
    assert final["pools"] == insights.insights(events, procs, frames)[0]
    assert final["pools"][0]["tasks"] == 8
