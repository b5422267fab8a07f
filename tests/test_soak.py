"""`make soak`: 300 runs back to back against a real server with three Socket.IO viewers
connected; the server's fds, threads, RSS and zombie children must not grow. Prints the
figures recorded in docs/RELIABILITY.md."""
import os
import time

import pytest
import requests
import socketio

from tests.leaks import run_processes, zombie_children
from tests.conftest import wait_until

RUNS = int(os.environ.get("MPDASH_SOAK_RUNS", "300"))


def server_figures(pid):
    with open(f"/proc/{pid}/status") as f:
        status = dict(line.split(":", 1) for line in f)
    return {"fds": len(os.listdir(f"/proc/{pid}/fd")), "threads": int(status["Threads"]),
            "rss_kib": int(status["VmRSS"].split()[0]), "zombies": len(zombie_children(pid))}


@pytest.mark.soak
@pytest.mark.timeout(1800)
def test_three_hundred_runs_with_three_viewers(server_factory):
    server = server_factory()
    viewers = []
    for _ in range(3):
        client = socketio.Client(reconnection=False)
        client.frames = 0
        client.on("metrics", lambda data, c=client: setattr(c, "frames", c.frames + 1))
        client.connect(server.url, transports=["websocket"], wait_timeout=10)
        viewers.append(client)
    lessons = [("pool-map", {}), ("process-target", {"count": 2}),
               ("pool-map", {"start_method": "spawn", "workers": 2}),
               ("process-subclass", {})]

    hung = []   # runs still running after 30 s: stopped, reported, and a failure

    def one(i):
        lesson, params = lessons[i % len(lessons)]
        r = requests.post(f"{server.url}/api/runs", json={"lesson": lesson, "params": params},
                          timeout=10)
        assert r.status_code == 201, r.text
        run_id = r.json()["id"]
        if not wait_until(lambda: requests.get(f"{server.url}/api/runs/{run_id}?since=999999999",
                                             timeout=10).json()["state"] != "running",
                        timeout=30, step=0.05):
            run = requests.get(f"{server.url}/api/runs/{run_id}", timeout=10).json()
            hung.append((lesson, params, [(p["role"], p["end"], p["exitcode"])
                                          for p in run["processes"]]))
            requests.post(f"{server.url}/api/runs/{run_id}/stop", timeout=10)
            return
        state = requests.get(f"{server.url}/api/runs/{run_id}", timeout=10).json()["state"]
        assert state == "finished", (lesson, state)

    for i in range(8):     # warm-up: imports, caches, thread pools reach their size
        one(i)
    time.sleep(1)
    before = server_figures(server.pid)
    t0 = time.monotonic()
    for i in range(RUNS):
        one(i)
    took = time.monotonic() - t0
    assert wait_until(lambda: not run_processes(server.pid), timeout=5)
    time.sleep(1.5)
    after = server_figures(server.pid)
    frames = [c.frames for c in viewers]
    for c in viewers:
        assert c.connected
        c.disconnect()
    print(f"\nsoak: {RUNS} runs in {took:.0f} s ({took / RUNS * 1000:.0f} ms/run), "
          f"viewers got {frames} metrics frames")
    print(f"soak: before {before}")
    print(f"soak: after  {after}")
    print(f"soak: {len(hung)} runs hung and were stopped: {hung}")
    assert after["fds"] <= before["fds"] + 3, (before, after)
    assert after["threads"] <= before["threads"] + 2, (before, after)
    assert after["zombies"] == 0, after
    assert after["rss_kib"] < before["rss_kib"] + 64 * 1024, (before, after)
    assert min(frames) > 0
    assert not hung
