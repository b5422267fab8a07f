"""Who gets in: open on loopback, tokens elsewhere, viewers read-only, same-origin sockets,
security headers on every response. Only loopback traffic (the token mode is forced by
configuration, or by binding 127.0.0.2, which is loopback but not an "open" host)."""
import pytest
import requests

from mpdash.web import create_app, security

PRESENTER, VIEWER = "presenter-token-0123456789", "viewer-token-9876543210"


@pytest.fixture
def token_app(dashboard):
    return create_app(dashboard, {"TESTING": True, "MPDASH_TOKEN": PRESENTER,
                                  "MPDASH_VIEWER_TOKEN": VIEWER})


def sio_client(app, **kw):
    return app.extensions["socketio"].test_client(app, **kw)


def hello(sio):
    # Broadcasts (metrics, run messages) of earlier activity may arrive before it.
    return next(m["args"][0] for m in sio.get_received() if m["name"] == "hello")


def bearer(token):
    return {"Authorization": f"Bearer {token}"}


# ------------------------------------------------------------------ headers

@pytest.mark.parametrize("path", ["/api/lessons", "/api/system", "/api/runs/nope",
                                  "/api/nothing-here", "/static/vendor/README.md"])
def test_every_response_carries_the_security_headers(client, path):
    r = client.get(path)
    # The whole policy docs/API.md "Access" promises, directive for directive.
    directives = {d.strip() for d in r.headers["Content-Security-Policy"].split(";") if d.strip()}
    assert directives == {"default-src 'self'", "script-src 'self'", "style-src 'self'",
                          "img-src 'self' data:", "connect-src 'self'", "font-src 'self'",
                          "object-src 'none'", "base-uri 'none'", "form-action 'self'",
                          "frame-ancestors 'none'"}, directives
    assert r.headers["X-Content-Type-Options"] == "nosniff"
    assert r.headers["Referrer-Policy"] == "no-referrer"
    assert r.headers["X-Frame-Options"] == "DENY"


def test_refused_requests_carry_the_headers_too(token_app):
    r = token_app.test_client().get("/api/system")
    assert r.status_code == 401 and "Content-Security-Policy" in r.headers


# ------------------------------------------------------------------ open mode

def test_loopback_is_open_and_everyone_presents(client, app):
    info = client.get("/api/system").get_json()
    assert info["role"] == "presenter" and "viewer_url" not in info   # nobody to hand it to
    sio = sio_client(app)
    assert sio.is_connected()
    assert hello(sio)["system"]["role"] == "presenter"
    sio.disconnect()


def test_only_the_usual_loopback_names_are_open():
    assert all(security.is_open_host(h) for h in ("127.0.0.1", "localhost", "::1"))
    assert not any(security.is_open_host(h) for h in ("0.0.0.0", "127.0.0.2", "::", "10.0.0.1"))


# ------------------------------------------------------------------ token mode over HTTP

def test_no_token_or_a_wrong_one_is_refused(token_app, dashboard):
    c = token_app.test_client()
    for headers, query in [({}, ""), (bearer("wrong"), ""), ({}, "?token=wrong"),
                           (bearer(PRESENTER[:-1]), ""), (bearer(PRESENTER + "x"), "")]:
        assert c.get("/api/system" + query, headers=headers).status_code == 401
        r = c.post("/api/runs" + query, json={"lesson": "pool-map"}, headers=headers)
        assert r.status_code == 401
        assert c.get("/" + query, headers=headers).status_code == 401
    assert dashboard.hub.runs == {}


def test_query_token_becomes_an_httponly_cookie_and_leaves_the_url(token_app):
    c = token_app.test_client()
    r = c.get(f"/?token={PRESENTER}")
    assert r.status_code == 303 and r.headers["Location"] == "/"
    cookie = r.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and PRESENTER in cookie
    info = c.get("/api/system").get_json()          # the cookie alone is enough now
    assert info["role"] == "presenter"
    assert info["viewer_url"].endswith(f"?token={VIEWER}")


def test_bearer_token_works_without_a_cookie(token_app):
    c = token_app.test_client()
    r = c.get("/api/system", headers=bearer(PRESENTER))
    assert r.status_code == 200 and r.get_json()["role"] == "presenter"
    assert "Set-Cookie" not in r.headers


def test_viewer_watches_but_cannot_start_stop_or_delete(token_app, dashboard):
    presenter, viewer = token_app.test_client(), token_app.test_client()
    info = viewer.get("/api/system", headers=bearer(VIEWER)).get_json()
    assert info["role"] == "viewer" and "viewer_url" not in info
    assert viewer.get("/api/lessons", headers=bearer(VIEWER)).status_code == 200
    r = viewer.post("/api/runs", json={"lesson": "pool-map"}, headers=bearer(VIEWER))
    assert r.status_code == 403 and dashboard.hub.runs == {}
    run = presenter.post("/api/runs", json={"lesson": "pool-map", "params": {"spin": 2.0}},
                         headers=bearer(PRESENTER)).get_json()
    assert viewer.post(f"/api/runs/{run['id']}/stop", headers=bearer(VIEWER)).status_code == 403
    assert dashboard.hub.get(run["id"]).live
    assert viewer.get(f"/api/runs/{run['id']}", headers=bearer(VIEWER)).status_code == 200
    r = presenter.post(f"/api/runs/{run['id']}/stop", headers=bearer(PRESENTER))
    assert r.get_json()["state"] == "stopped"
    assert viewer.delete(f"/api/runs/{run['id']}", headers=bearer(VIEWER)).status_code == 403
    for method in (viewer.put, viewer.patch):   # every writing method under /api/, not only routes
        for path in ("/api/runs", f"/api/runs/{run['id']}"):
            assert method(path, json={}, headers=bearer(VIEWER)).status_code == 403, (method, path)
    assert presenter.delete(f"/api/runs/{run['id']}", headers=bearer(PRESENTER)).status_code == 204


def test_tokens_are_compared_in_constant_time(token_app, monkeypatch):
    calls = []
    real = security.hmac.compare_digest
    monkeypatch.setattr(security.hmac, "compare_digest",
                        lambda a, b: calls.append((a, b)) or real(a, b))
    token_app.test_client().get("/api/system", headers=bearer("nearly-" + PRESENTER))
    assert len(calls) == 2   # presenter and viewer, both always compared


# ------------------------------------------------------------------ token mode over Socket.IO

def test_socket_without_a_token_is_refused(token_app):
    assert not sio_client(token_app).is_connected()
    assert not sio_client(token_app, auth={"token": "wrong"}).is_connected()


@pytest.mark.parametrize("how", ["auth", "query", "bearer", "cookie"])
def test_socket_presenter_can_start_and_stop(token_app, dashboard, how):
    kw = {"auth": {"token": PRESENTER}} if how == "auth" else \
        {"query_string": f"token={PRESENTER}"} if how == "query" else \
        {"headers": bearer(PRESENTER)}
    if how == "cookie":   # what the page sends: the cookie it got for ?token=, nothing else
        flask_client = token_app.test_client()
        flask_client.get(f"/?token={PRESENTER}")
        assert flask_client.get_cookie(security.COOKIE).value == PRESENTER
        kw = {"flask_test_client": flask_client}
    sio = sio_client(token_app, **kw)
    assert sio.is_connected()
    assert hello(sio)["system"]["role"] == "presenter"
    run = sio.emit("start", {"lesson": "pool-map", "params": {"spin": 2.0}}, callback=True)
    assert run["state"] == "running"
    assert sio.emit("stop", {"run": run["id"]}, callback=True)["state"] == "stopped"
    sio.disconnect()


def test_socket_viewer_gets_error_acks_and_starts_nothing(token_app, dashboard):
    sio = sio_client(token_app, auth={"token": VIEWER})
    assert sio.is_connected()
    assert hello(sio)["system"]["role"] == "viewer"
    ack = sio.emit("start", {"lesson": "pool-map"}, callback=True)
    assert ack["status"] == 403 and "viewer" in ack["error"] and dashboard.hub.runs == {}
    run = dashboard.engine.start_lesson("pool-map", {"spin": 2.0})
    ack = sio.emit("stop", {"run": run.id}, callback=True)
    assert ack["status"] == 403 and run.live
    dashboard.engine.stop(run.id)
    sio.disconnect()


# ------------------------------------------------------------------ same origin only

@pytest.mark.parametrize("origin,allowed", [("http://localhost", True),
                                            ("http://evil.example", False),
                                            ("null", False)])
def test_socketio_handshake_only_from_the_pages_own_origin(client, origin, allowed):
    r = client.get("/socket.io/?EIO=4&transport=polling", headers={"Origin": origin})
    assert (r.status_code == 200) is allowed, (r.status_code, r.data[:200])


# ------------------------------------------------------------------ lesson parameters are data

@pytest.mark.parametrize("body", [
    {"lesson": "os"}, {"lesson": "mpdash.harness"}, {"lesson": "../../etc/passwd"},
    {"lesson": "pool-map", "params": {"workers": "__import__('os').system('true')"}},
    {"lesson": "pool-map", "params": {"start_method": "fork; rm -rf /"}},
    {"lesson": "pool-map", "params": {"__class__": 1}},
])
def test_nothing_a_client_sends_is_run_as_code(client, dashboard, body):
    assert client.post("/api/runs", json=body).status_code == 400
    assert dashboard.hub.runs == {}


# ------------------------------------------------------------------ the real server

def test_server_off_the_open_hosts_prints_a_token_url_and_requires_it(server_factory):
    server = server_factory("--host", "127.0.0.2")
    line = server.first_line
    assert "?token=" in line
    token = line.split("?token=")[1].split()[0]
    assert requests.get(f"{server.url}/api/system", timeout=10).status_code == 401
    r = requests.get(f"{server.url}/api/system", headers=bearer(token), timeout=10)
    assert r.status_code == 200 and r.json()["role"] == "presenter"
    viewer = r.json()["viewer_url"].split("?token=")[1]
    # The printed viewer link (the line after the URL) is that read-only link, and works.
    assert server.second_line.strip() == f"viewer link (read-only): {server.url}/?token={viewer}"
    r = requests.get(f"{server.url}/api/system", headers=bearer(viewer), timeout=10)
    assert r.status_code == 200 and r.json()["role"] == "viewer"
    r = requests.post(f"{server.url}/api/runs", json={"lesson": "pool-map"},
                      headers=bearer(viewer), timeout=10)
    assert r.status_code == 403
    # Cross-origin Socket.IO handshake on the real server: refused.
    hs = f"{server.url}/socket.io/?EIO=4&transport=polling&token={token}"
    assert requests.get(hs, headers={"Origin": "http://evil.example"}, timeout=10).status_code == 400
    assert requests.get(hs, headers={"Origin": server.url}, timeout=10).status_code == 200


def test_token_from_the_environment(server_factory):
    server = server_factory("--host", "127.0.0.2", env={"MPDASH_TOKEN": PRESENTER})
    assert f"?token={PRESENTER}" in server.first_line
    r = requests.get(f"{server.url}/api/system", headers=bearer(PRESENTER), timeout=10)
    assert r.json()["role"] == "presenter"
