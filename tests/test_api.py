"""The HTTP API through Flask's test client: shapes, status codes, and nothing started on errors."""
import time

import pytest


def wait_for_end(client, run_id, timeout=30):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        run = client.get(f"/api/runs/{run_id}").get_json()
        if run["state"] not in ("starting", "running"):
            return run
        time.sleep(0.05)
    raise AssertionError("run did not end")


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
