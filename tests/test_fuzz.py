"""Bad input, generated: arbitrary JSON at every door. Never a 5xx, every socket call answered,
nothing started unless the request was valid, the server still serves afterwards."""
import json
from urllib.parse import quote

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mpdash import lessons

FUZZ = settings(max_examples=60, deadline=None, derandomize=False,
                suppress_health_check=[HealthCheck.function_scoped_fixture,
                                       HealthCheck.too_slow])

LESSON_IDS = list(lessons.catalog())
PARAM_NAMES = sorted({p.name for l in lessons.catalog().values() for p in l.params})

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
bodies = st.one_of(
    json_values,
    st.fixed_dictionaries({"lesson": st.one_of(st.sampled_from(LESSON_IDS), json_values)},
                          optional={"params": params, "extra": json_values}),
)


def deep(depth, leaf="[]"):
    return "[" * depth + leaf + "]" * depth


def dumps(value) -> bytes:
    return json.dumps(value, allow_nan=True).encode()


def started_validly(body) -> bool:
    """The oracle: would the contract accept this body?"""
    if not isinstance(body, dict) or set(body) - {"lesson", "params"} or "lesson" not in body:
        return False
    try:
        lessons.validate_params(lessons.get(body["lesson"]), body.get("params"))
    except lessons.ParamError:
        return False
    return True


def stop_all(dashboard):
    for run in list(dashboard.hub.runs.values()):
        if run.live:
            dashboard.engine.stop(run.id)


def assert_alive(client):
    assert client.get("/api/system").status_code == 200


@FUZZ
@given(body=bodies)
def test_post_runs_never_5xx_and_starts_only_valid(client, dashboard, body):
    before = set(dashboard.hub.runs)
    r = client.post("/api/runs", data=dumps(body), content_type="application/json")
    assert r.status_code in (201, 400, 429), (r.status_code, r.data[:300])
    assert r.is_json and (r.status_code == 201 or "error" in r.get_json())
    new = set(dashboard.hub.runs) - before
    if r.status_code == 201:
        assert started_validly(body) and len(new) == 1
        stop_all(dashboard)
    else:
        assert not new
        if r.status_code == 400:
            assert not started_validly(body)


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


@FUZZ
@given(run_id=run_ids, since=sinces)
def test_get_run_with_since_never_5xx(client, run_id, since):
    r = client.get(f"/api/runs/{quote(run_id, safe='')}?since={quote(since, safe='')}")
    assert r.status_code in (200, 400, 404), (r.status_code, r.data[:300])


@FUZZ
@given(run_id=run_ids, method=st.sampled_from(["stop", "delete"]))
def test_stop_and_delete_unknown_ids_never_5xx(client, run_id, method):
    path = f"/api/runs/{quote(run_id, safe='')}"
    r = client.post(path + "/stop") if method == "stop" else client.delete(path)
    # 308: Werkzeug merging "//" of a decoded %2F; a redirect, nothing done.
    assert r.status_code in (308, 400, 404, 405), (r.status_code, r.data[:300])


def test_since_on_a_real_run(client, dashboard):
    run = dashboard.engine.start_lesson("process-target", {})
    dashboard.engine.wait(run.id, timeout=20)
    for since in ("0", "-5", str(run.seq), "99999999999999999999", "1.5", "x"):
        r = client.get(f"/api/runs/{run.id}?since={since}")
        assert r.status_code in (200, 400)


@pytest.fixture
def sio(app):
    client = app.extensions["socketio"].test_client(app)
    assert client.is_connected()
    yield client
    client.disconnect()


@FUZZ
@given(data=bodies)
def test_socket_start_always_acked_and_starts_only_valid(sio, dashboard, data):
    before = set(dashboard.hub.runs)
    ack = sio.emit("start", data, callback=True)
    assert isinstance(ack, dict), ack
    new = set(dashboard.hub.runs) - before
    if "id" not in ack:   # an error ack (a Run has an "error" field too, null while running)
        assert ack["error"] and not new
    else:
        assert started_validly(data) and ack["state"] == "running" and len(new) == 1
        stop_all(dashboard)


@FUZZ
@given(data=st.one_of(json_values, st.fixed_dictionaries({"run": json_values}),
                      st.fixed_dictionaries({"run": run_ids})))
def test_socket_stop_always_acked(sio, data):
    ack = sio.emit("stop", data, callback=True)
    assert isinstance(ack, dict) and "error" in ack, ack


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
