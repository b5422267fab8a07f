"""The HTTP API through Flask's test client: shapes, status codes, and nothing started on errors."""
import pytest

from mpdash.state import Run
from tests.conftest import wait_until


def wait_for_end(client, run_id, timeout=30):
    ended = lambda: (lambda run: run if run["state"] not in ("starting", "running") else None)(
        client.get(f"/api/runs/{run_id}").get_json())
    run = wait_until(ended, timeout=timeout, step=0.05)
    assert run, "run did not end"
    return run


def _stored_runs(dashboard, count, t0=1_000_000.0):
    """``count`` ended runs put straight into the hub, one second apart (newest last)."""
    ids = []
    for i in range(count):
        run = Run(id=f"r{i:04d}", lesson="watch", title=f"run {i}", params={})
        run.started_at, run.state = t0 + i, "finished"
        dashboard.hub.add_run(run)
        ids.append(run.id)
    return ids


def test_lessons_carry_the_contract_fields(client):
    lessons = client.get("/api/lessons").get_json()
    ids = [l["id"] for l in lessons]
    assert {"process-target", "process-subclass", "pool-map"} <= set(ids)
    for lesson in lessons:
        assert set(lesson) >= {"id", "title", "section", "section_title", "summary",
                               "explanation", "predict", "params", "code"}
        assert "def main" in lesson["code"] and "LESSON = Lesson(" not in lesson["code"]
        for p in lesson["params"]:
            assert set(p) == {"name", "type", "default", "min", "max", "choices", "unit", "help"}


def test_system(client):
    system = client.get("/api/system").get_json()
    assert system["cores"] >= 1 and system["sample_hz"] == 10 and system["role"] == "presenter"
    assert "fork" in system["start_methods"] and system["limits"]["max_runs"] == 4


def test_run_pool_map_over_http(client):
    response = client.post("/api/runs", json={"lesson": "pool-map", "params": {"workers": 2}})
    assert response.status_code == 201
    run = response.get_json()
    assert run["state"] == "running" and run["processes"][0]["role"] == "main"
    final = wait_for_end(client, run["id"])
    assert final["state"] == "finished" and final["result"] == [1, 4, 9, 16, 25]
    assert len([p for p in final["processes"] if p["role"] == "worker"]) == 2
    listed = client.get("/api/runs").get_json()
    assert listed[0]["id"] == run["id"] and "output" not in listed[0]


@pytest.mark.parametrize("body, field", [
    ({"lesson": "nope"}, "unknown lesson"),
    ({"lesson": "pool-map", "params": {"workers": 99}}, "workers"),
    ({"lesson": "pool-map", "params": {"bogus": 1}}, "bogus"),
    ({"lesson": "pool-map", "params": {"workers": "3"}}, "workers"),
    ({"lesson": "pool-map", "params": []}, "params"),
    ({"params": {}}, "lesson"),
    ({"lesson": "pool-map", "extra": 1}, "extra"),
    ([1, 2], "object"),
    ("pool-map", "object"),
])
def test_bad_start_is_400_naming_the_field_and_starts_nothing(client, dashboard, body, field):
    response = client.post("/api/runs", json=body)
    assert response.status_code == 400
    assert field in response.get_json()["error"]
    assert dashboard.hub.runs == {}


def test_malformed_json_is_400(client, dashboard):
    response = client.post("/api/runs", data="{not json", content_type="application/json")
    assert response.status_code == 400 and "error" in response.get_json()
    assert dashboard.hub.runs == {}


def test_limit_is_429(client, dashboard):
    dashboard.hub.limits.max_runs = 1
    first = client.post("/api/runs", json={"lesson": "process-target", "params": {"delay": 0.5}})
    assert first.status_code == 201
    second = client.post("/api/runs", json={"lesson": "process-target"})
    assert second.status_code == 429 and "limit" in second.get_json()["error"]
    stopped = client.post(f"/api/runs/{first.get_json()['id']}/stop").get_json()
    assert stopped["state"] == "stopped"


@pytest.mark.parametrize("path", ["/api/runs/nope", "/api/runs/..%2F..%2Fetc", "/api/runs/" + "x" * 40])
def test_unknown_run_is_404(client, path):
    for answer in (client.get(path), client.post(path + "/stop"), client.delete(path),
                   client.get(path + "/metrics.csv"), client.get(path + "/trace.json")):
        assert answer.status_code == 404 and "error" in answer.get_json(), answer


def test_errors_under_api_are_json_even_without_a_matching_route(client):
    # Routing fails before any blueprint is chosen: the answer must still be JSON.
    for answer, status in ((client.get("/api/nothing"), 404), (client.get("/api/runs/a/b/c"), 404),
                           (client.put("/api/runs"), 405)):
        assert answer.status_code == status and "error" in answer.get_json(silent=True), answer


def test_since_filters(client):
    run = client.post("/api/runs", json={"lesson": "process-target"}).get_json()
    final = wait_for_end(client, run["id"])
    tail = client.get(f"/api/runs/{run['id']}?since={final['seq']}").get_json()
    assert tail["output"] == [] and tail["processes"] == [] and tail["state"] == "finished"
    assert client.get(f"/api/runs/{run['id']}?since=x").status_code == 400


def test_delete(client):
    run = client.post("/api/runs", json={"lesson": "process-target"}).get_json()
    wait_for_end(client, run["id"])
    assert client.delete(f"/api/runs/{run['id']}").status_code == 204
    assert client.get(f"/api/runs/{run['id']}").status_code == 404


def test_delete_of_a_live_run_is_409_and_keeps_it(client, dashboard):
    run = client.post("/api/runs", json={"lesson": "process-target",
                                          "params": {"delay": 1.0, "count": 20}}).get_json()
    answer = client.delete(f"/api/runs/{run['id']}")
    assert answer.status_code == 409 and answer.get_json()["error"], answer.get_json()
    assert dashboard.hub.get(run["id"]).live
    assert client.post(f"/api/runs/{run['id']}/stop").get_json()["state"] == "stopped"
    assert client.delete(f"/api/runs/{run['id']}").status_code == 204


def test_the_process_limit_is_429_over_http(client, dashboard):
    dashboard.hub.limits.max_processes = 3     # reached by the first run: its main and two workers
    first = client.post("/api/runs", json={"lesson": "process-target",
                                            "params": {"delay": 1.0, "count": 20}}).get_json()
    assert wait_until(lambda: len(dashboard.hub.get(first["id"]).live_pids()) == 3, timeout=10)
    second = client.post("/api/runs", json={"lesson": "process-target"})
    assert second.status_code == 429 and "live processes" in second.get_json()["error"], second.get_json()
    assert list(dashboard.hub.runs) == [first["id"]]
    client.post(f"/api/runs/{first['id']}/stop")


def test_runs_are_paged_newest_first_with_limit_and_before(client, dashboard):
    ids = _stored_runs(dashboard, 7)
    newest_first = ids[::-1]
    assert [r["id"] for r in client.get("/api/runs").get_json()] == newest_first
    page1 = client.get("/api/runs?limit=3").get_json()
    assert [r["id"] for r in page1] == newest_first[:3]
    page2 = client.get(f"/api/runs?limit=3&before={page1[-1]['id']}").get_json()
    assert [r["id"] for r in page2] == newest_first[3:6]
    page3 = client.get(f"/api/runs?limit=3&before={page2[-1]['id']}").get_json()
    assert [r["id"] for r in page3] == newest_first[6:]
    for bad in ("0", "1001", "x", "2.5"):
        assert client.get(f"/api/runs?limit={bad}").status_code == 400, bad
    assert len(client.get("/api/runs?limit=1000").get_json()) == 7


def test_hello_lists_the_200_newest_runs_and_deletes_are_announced(app, dashboard, client):
    ids = _stored_runs(dashboard, 205)
    sio = app.extensions["socketio"].test_client(app)
    try:
        hello = next(m["args"][0] for m in sio.get_received() if m["name"] == "hello")
        assert [r["id"] for r in hello["runs"]] == ids[::-1][:200]
        assert client.delete(f"/api/runs/{ids[0]}").status_code == 204
        deleted = [m["args"][0] for m in sio.get_received() if m["name"] == "run_deleted"]
        assert len(deleted) == 1 and deleted[0]["id"] == ids[0] and deleted[0]["seq"] > hello["seq"]
    finally:
        sio.disconnect()
