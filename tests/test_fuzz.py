"""Bad input, generated: arbitrary JSON at every door. Never a 5xx, every socket call answered,
nothing started unless the request was valid, the server still serves afterwards.

Each generated test builds its own Dashboard and app (no pytest fixture is shared across
Hypothesis examples), stops what an example started before the next one, and proves at its end
that nothing it started is left. Validity is decided by an oracle written from the contract
(docs/API.md "Param" and the lessons' published bounds), not by the code under test.
"""
import contextlib
import json
import math
from urllib.parse import quote

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mpdash import lessons
from mpdash.dashboard import Dashboard
from mpdash.state import Limits
from tests.leaks import assert_none_left

FUZZ = settings(max_examples=60, deadline=None, derandomize=False)

# The published spec (GET /api/lessons), as a client reads it: id -> {param name -> spec}.
SPEC = {l.id: {p["name"]: p for p in l.to_json()["params"]} for l in lessons.catalog().values()}
LESSON_IDS = list(SPEC)
PARAM_NAMES = sorted({name for params in SPEC.values() for name in params})

scalars = st.one_of(
    st.none(), st.booleans(),
    st.integers(), st.integers(min_value=-(10 ** 400), max_value=10 ** 400),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=40), st.text(min_size=5000, max_size=20000, alphabet="ab/.\\%\0"),
    st.sampled_from(["../../etc/passwd", "__import__('os').system('true')", "%00", "\u202e",
                     "fork", "spawn", "forkserver", "pool-map", "NaN", "1e309"]),
)
json_values = st.recursive(scalars, lambda inner: st.one_of(
    st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=10), inner, max_size=4)),
    max_leaves=12)
params = st.one_of(json_values, st.dictionaries(
    st.one_of(st.sampled_from(PARAM_NAMES), st.text(max_size=12)), json_values, max_size=5))
def _near(spec):
    """Values for one parameter around its published bounds and type: the edges where a
    validator goes wrong (min-1, min, max, max+1, halves, other types)."""
    kind = spec["type"]
    if kind == "choice":
        return st.one_of(st.sampled_from(spec["choices"]), st.sampled_from(["", "nope", "FORK"]),
                         scalars)
    if kind == "bool":
        return st.one_of(st.booleans(), st.sampled_from([0, 1, "true", None]))
    low, high = spec["min"], spec["max"]
    edges = [low - 1, low, high, high + 1, low - 0.5, high + 0.5, (low + high) / 2]
    numbers = st.one_of(st.sampled_from(edges), st.integers(int(low) - 3, int(high) + 3),
                        st.floats(low - 2, high + 2))
    return st.one_of(numbers, numbers.map(float), st.booleans(), numbers.map(str))


def _valid(spec):
    kind = spec["type"]
    if kind == "choice":
        return st.sampled_from(spec["choices"])
    if kind == "bool":
        return st.booleans()
    if kind == "int":
        return st.integers(int(spec["min"]), int(spec["max"]))
    return st.floats(spec["min"], spec["max"])


def _one_off(lesson):
    """A valid parameter set of ``lesson``, with at most one value drawn near its edges."""
    valid = st.fixed_dictionaries({}, optional={name: _valid(spec)
                                                for name, spec in SPEC[lesson].items()})
    changed = st.sampled_from(sorted(SPEC[lesson])).flatmap(
        lambda name: st.tuples(st.just(name), _near(SPEC[lesson][name])))
    return st.tuples(valid, st.one_of(st.none(), changed)).map(
        lambda pair: {"lesson": lesson,
                      "params": {**pair[0], **(dict([pair[1]]) if pair[1] else {})}})


# Bodies that are valid, or invalid in one small way: where the oracle and the server can differ.
near_valid = st.sampled_from([l for l in LESSON_IDS if SPEC[l]]).flatmap(_one_off)
bodies = st.one_of(
    json_values,
    st.fixed_dictionaries({"lesson": st.one_of(st.sampled_from(LESSON_IDS), json_values)},
                          optional={"params": params, "extra": json_values,
                                    "python": st.one_of(st.sampled_from(["server", "3.12.1", "nope",
                                                                         "/usr/bin/python3"]),
                                                        json_values)}),
    near_valid, near_valid,
)


def deep(depth, leaf="[]"):
    return "[" * depth + leaf + "]" * depth


def dumps(value) -> bytes:
    return json.dumps(value, allow_nan=True).encode()


def _param_ok(spec: dict, value) -> bool:
    """docs/API.md: int takes a JSON integer (or a float with no fraction), never true/false;
    float any finite number; bool true/false only; choice one of choices; [min, max] holds."""
    kind = spec["type"]
    if kind == "bool":
        return isinstance(value, bool)
    if kind == "choice":
        return isinstance(value, str) and value in spec["choices"]
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return False
    if isinstance(value, float) and not math.isfinite(value):
        return False
    if kind == "int" and isinstance(value, float) and value != int(value):
        return False
    return spec["min"] <= value <= spec["max"]


def contract_accepts(body, pythons=lambda: ()) -> bool:
    """The oracle: would the contract accept this body? (an object with "lesson", a known id,
    optional "params": an object (or null: none) of known names with valid values, optional
    "python": an id of GET /api/system's "pythons" (``pythons()``) or null (the server's
    own, as when absent), nothing else)"""
    if not isinstance(body, dict) or set(body) - {"lesson", "params", "python"} \
            or "lesson" not in body:
        return False
    if body.get("python") is not None and \
            not (isinstance(body["python"], str) and body["python"] in pythons()):
        return False
    lesson = body["lesson"]
    if not isinstance(lesson, str) or lesson not in SPEC:
        return False
    params = body.get("params")
    if params is None:
        return True
    if not isinstance(params, dict):
        return False
    return all(name in SPEC[lesson] and _param_ok(SPEC[lesson][name], value)
               for name, value in params.items())


def published_pythons(app):
    """The interpreter ids the server publishes (read once, when a body names one)."""
    ids = []

    def get():
        if not ids:
            ids.extend(p["id"] for p in app.test_client().get("/api/system").get_json()["pythons"])
        return ids
    return get


@contextlib.contextmanager
def fresh_app():
    """A Dashboard and its app of this test's own; nothing of theirs outlives the test."""
    from mpdash.web import create_app
    dash = Dashboard(Limits())
    try:
        yield dash, create_app(dash, {"TESTING": True})
    finally:
        dash.close()
    assert_none_left(dash)


def stop_all(dashboard):
    for run in list(dashboard.hub.runs.values()):
        if run.live:
            dashboard.engine.stop(run.id)


def assert_alive(client):
    assert client.get("/api/system").status_code == 200


def test_post_runs_never_5xx_and_starts_only_valid():
    with fresh_app() as (dashboard, app):
        client = app.test_client()
        pythons = published_pythons(app)

        @FUZZ
        @given(body=bodies)
        def check(body):
            before = set(dashboard.hub.runs)
            r = client.post("/api/runs", data=dumps(body), content_type="application/json")
            new = set(dashboard.hub.runs) - before
            try:
                assert r.is_json, (r.status_code, r.data[:300])
                if contract_accepts(body, pythons):
                    assert r.status_code in (201, 429), (r.status_code, r.get_json(), body)
                else:
                    assert r.status_code == 400, (r.status_code, r.data[:300], body)
                if r.status_code == 201:
                    assert len(new) == 1 and r.get_json()["id"] in new
                else:
                    assert not new and "id" not in r.get_json()
                    assert isinstance(r.get_json()["error"], str) and r.get_json()["error"]
            finally:
                stop_all(dashboard)

        check()
        assert_alive(client)


@pytest.mark.parametrize("raw", [
    b"", b"{", b"null", b"[]", b'"x"', b"NaN", b'{"lesson": NaN}', b'{"lesson": Infinity}',
    deep(20000).encode(), ('{"lesson": "pool-map", "params": ' + deep(5000) + "}").encode(),
    b'{"lesson": "pool-map", "params": {"workers": 1e400}}',
    b'{"lesson": "pool-map", "params": {"spin": ' + b"9" * 5000 + b"}}",
    b'{"lesson": "pool-map", "params": {"spin": 1' + b"0" * 400 + b"}}",
    b"\xff\xfe\x00garbage", b'{"lesson": "pool-map"' + b" " * 70000 + b"}",
])
def test_post_runs_malformed_bodies(client, dashboard, raw):
    r = client.post("/api/runs", data=raw, content_type="application/json")
    assert r.status_code in (400, 413), (r.status_code, r.data[:300])
    assert dashboard.hub.runs == {}
    assert_alive(client)


run_ids = st.one_of(st.text(max_size=60), st.sampled_from(
    ["..", "../api/system", "%2e%2e%2f", "r" * 33, "r" * 32, "a/b", "\x00", "nope", " ",
     "/0", "0/", "/", "//", "%2F"]))
sinces = st.one_of(st.text(max_size=30), st.integers().map(str),
                   st.sampled_from(["-1", "1e5", "NaN", "inf", "9" * 5000, "0x10", ""]))


def test_get_run_with_since_never_5xx():
    with fresh_app() as (dashboard, app):
        client = app.test_client()

        @FUZZ
        @given(run_id=run_ids, since=sinces)
        def check(run_id, since):
            r = client.get(f"/api/runs/{quote(run_id, safe='')}?since={quote(since, safe='')}")
            assert r.status_code in (200, 400, 404), (r.status_code, r.data[:300])

        check()


def test_stop_and_delete_unknown_ids_never_5xx():
    with fresh_app() as (dashboard, app):
        client = app.test_client()

        @FUZZ
        @given(run_id=run_ids, method=st.sampled_from(["stop", "delete"]))
        def check(run_id, method):
            path = f"/api/runs/{quote(run_id, safe='')}"
            r = client.post(path + "/stop") if method == "stop" else client.delete(path)
            # 308: Werkzeug merging "//" of a decoded %2F; a redirect, nothing done.
            assert r.status_code in (308, 400, 404, 405), (r.status_code, r.data[:300])

        check()
        assert dashboard.hub.runs == {}


def test_since_on_a_real_run(client, dashboard):
    run = dashboard.engine.start_lesson("process-target", {})
    dashboard.engine.wait(run.id, timeout=20)
    # ?since= takes a whole number (docs/API.md): any whole number is 200, anything else 400.
    for since, status in (("0", 200), ("-5", 200), (str(run.seq), 200),
                          ("99999999999999999999", 200), ("1.5", 400), ("x", 400), ("", 400)):
        r = client.get(f"/api/runs/{run.id}?since={since}")
        assert r.status_code == status, (since, r.status_code, r.data[:200])
    assert client.get(f"/api/runs/{run.id}?since={run.seq}").get_json()["output"] == []
    assert len(client.get(f"/api/runs/{run.id}?since=0").get_json()["output"]) == len(run.output)


@pytest.fixture
def sio(app):
    client = app.extensions["socketio"].test_client(app)
    assert client.is_connected()
    yield client
    client.disconnect()


def test_socket_start_always_acked_and_starts_only_valid():
    with fresh_app() as (dashboard, app):
        sio = app.extensions["socketio"].test_client(app)
        pythons = published_pythons(app)

        @FUZZ
        @given(data=bodies)
        def check(data):
            before = set(dashboard.hub.runs)
            ack = sio.emit("start", data, callback=True)
            new = set(dashboard.hub.runs) - before
            try:
                assert isinstance(ack, dict), ack
                valid = contract_accepts(data, pythons)
                if valid:
                    assert ack.get("state") == "running" or ack.get("status") == 429, (ack, data)
                if "id" in ack:   # a Run (its "error" is null while it runs)
                    assert valid and ack["state"] == "running"
                    assert new == {ack["id"]}
                else:             # an error ack: a message, nothing started
                    assert isinstance(ack["error"], str) and ack["error"] and not new
                    assert ack.get("status") == 429 or not valid, (ack, data)
            finally:
                stop_all(dashboard)

        try:
            check()
        finally:
            sio.disconnect()


def test_socket_stop_always_acked():
    with fresh_app() as (dashboard, app):
        sio = app.extensions["socketio"].test_client(app)

        @FUZZ
        @given(data=st.one_of(json_values, st.fixed_dictionaries({"run": json_values}),
                              st.fixed_dictionaries({"run": run_ids})))
        def check(data):
            ack = sio.emit("stop", data, callback=True)
            assert isinstance(ack, dict) and "id" not in ack and ack["error"], ack

        try:
            check()
        finally:
            sio.disconnect()


def raw_emit(sio, event, json_text):
    """What a hostile client can send but no encoder would: the packet text itself."""
    sio.callback_counter += 1
    sio.socketio.server._handle_eio_message(
        sio.eio_sid, f'2{sio.callback_counter}["{event}",{json_text}]')
    ack, sio.acks = sio.acks, None
    return ack["args"][0] if ack else None


@pytest.mark.parametrize("data", [deep(3000), '{"lesson": ' + deep(5000) + "}",
                                  json.dumps("x" * 200_000), "NaN", "-Infinity",
                                  '{"lesson": "pool-map", "params": {"workers": 1e999}}',
                                  '{"lesson": "pool-map", "params": {"spin": ' + "9" * 5000 + "}}"])
def test_socket_extremes_are_acked_and_the_server_lives(sio, client, dashboard, data):
    for event in ("start", "stop"):
        ack = raw_emit(sio, event, data)
        assert isinstance(ack, dict) and ack.get("error"), ack
    assert dashboard.hub.runs == {}
    assert_alive(client)
    assert sio.emit("start", {"lesson": "process-target"}, callback=True)["state"] == "running"
    stop_all(dashboard)
