"""Nobody gets in through another browser tab (issue 15): a rebinding Host is refused on every
route and on the Socket.IO handshake; a state-changing request from another origin, as a form,
as "simple" text/plain, or preflighted, is refused and changes nothing. What a hostile page can
send is played here by the test client and, against a real ``python app.py``, by requests."""
import pytest
import requests

from mpdash.web import create_app, origin

EVIL = "http://evil.example"
HANDSHAKE = "/socket.io/?EIO=4&transport=polling"
BODY = '{"lesson": "pool-map", "params": {"workers": 16}}'
CORS_HEADERS = ("Access-Control-Allow-Origin", "Access-Control-Allow-Methods",
                "Access-Control-Allow-Headers", "Access-Control-Allow-Credentials")


def finished_run(dashboard):
    run = dashboard.engine.start_lesson("process-target", {})
    dashboard.engine.wait(run.id, timeout=30)
    assert not run.live
    return run


def refused(answer, *words):
    assert answer.status_code == 403, (answer.status_code, answer.get_data(as_text=True)[:300])
    error = answer.get_json()["error"]
    for word in words:
        assert word in error, error
    return error


# ------------------------------------------------------------------ same-origin writes

@pytest.mark.parametrize("headers", [
    {"Origin": EVIL, "Content-Type": "text/plain"},                       # the issue's request
    {"Origin": "null", "Content-Type": "text/plain;charset=UTF-8"},       # sandboxed / no-referrer page
    {"Content-Type": "text/plain"},                                       # no Origin: still not JSON
    {"Sec-Fetch-Site": "cross-site", "Content-Type": "text/plain"},
], ids=["evil-origin", "null-origin", "no-origin", "sec-fetch-site"])
def test_simple_cross_site_post_starts_nothing(client, dashboard, headers):
    refused(client.post("/api/runs", data=BODY, headers=headers))
    assert dashboard.hub.runs == {}


@pytest.mark.parametrize("content_type,data", [
    ("application/x-www-form-urlencoded", "lesson=pool-map"),
    ("multipart/form-data; boundary=x",
     '--x\r\nContent-Disposition: form-data; name="lesson"\r\n\r\npool-map\r\n--x--\r\n'),
])
@pytest.mark.parametrize("from_origin", [True, False])
def test_form_post_starts_nothing(client, dashboard, content_type, data, from_origin):
    headers = {"Content-Type": content_type, **({"Origin": EVIL} if from_origin else {})}
    refused(client.post("/api/runs", data=data, headers=headers),
            "cross-origin" if from_origin else "application/json")
    assert dashboard.hub.runs == {}


@pytest.mark.parametrize("origin_value", [EVIL, "http://localhost:8080", "https://localhost.evil",
                                          "null", "file://", "not a url"])
def test_json_from_another_origin_starts_nothing(client, dashboard, origin_value):
    refused(client.post("/api/runs", json={"lesson": "pool-map"},
                        headers={"Origin": origin_value}), "cross-origin")
    assert dashboard.hub.runs == {}


def test_foreign_referer_is_refused_too(client, dashboard):
    refused(client.post("/api/runs", json={"lesson": "pool-map"},
                        headers={"Referer": EVIL + "/attack.html"}), "Referer")
    assert dashboard.hub.runs == {}


@pytest.mark.parametrize("headers", [
    {"Origin": EVIL}, {"Referer": EVIL + "/"}, {"Sec-Fetch-Site": "same-site"},
    {"Content-Type": "text/plain"}, {"Origin": "null"},
])
def test_cross_origin_delete_and_stop_change_nothing(client, dashboard, headers):
    done = finished_run(dashboard)
    refused(client.delete(f"/api/runs/{done.id}", headers=headers))
    assert dashboard.hub.get(done.id) is not None
    live = dashboard.engine.start_lesson("pool-map", {"spin": 2.0})
    refused(client.post(f"/api/runs/{live.id}/stop", headers=headers))
    assert live.live
    dashboard.engine.stop(live.id)


@pytest.mark.parametrize("path", ["/api/runs", "/api/runs/x", "/api/runs/x/stop"])
def test_preflight_from_another_origin_gets_no_cors_allowance(client, path):
    r = client.options(path, headers={"Origin": EVIL, "Access-Control-Request-Method": "DELETE",
                                      "Access-Control-Request-Headers": "content-type"})
    refused(r, "cross-origin")
    assert not [h for h in CORS_HEADERS if h in r.headers]
    # Even our own origin's preflight is answered with no CORS grant: there is none to give.
    mine = client.options(path, headers={"Origin": "http://localhost"})
    assert not [h for h in CORS_HEADERS if h in mine.headers]


def test_socketio_preflight_from_another_origin_is_refused(client):
    r = client.options(HANDSHAKE, headers={"Origin": EVIL, "Access-Control-Request-Method": "POST"})
    assert r.status_code >= 400 and not [h for h in CORS_HEADERS if h in r.headers]


def test_the_pages_own_origin_and_scripts_still_write(client, dashboard):
    # The page's origin (the test client's Host is "localhost"), and curl with JSON (no Origin).
    same = client.post("/api/runs", json={"lesson": "pool-map", "params": {"spin": 2.0}},
                       headers={"Origin": "http://localhost", "Sec-Fetch-Site": "same-origin"})
    assert same.status_code == 201, same.get_json()
    run_id = same.get_json()["id"]
    # A bodiless stop/DELETE, as `curl -X POST|DELETE` sends it: no Content-Type needed.
    assert client.post(f"/api/runs/{run_id}/stop").get_json()["state"] == "stopped"
    with_charset = client.post("/api/runs", data='{"lesson": "process-target"}',
                               content_type="application/json; charset=utf-8")
    assert with_charset.status_code == 201
    dashboard.engine.wait(with_charset.get_json()["id"], timeout=30)
    assert client.delete(f"/api/runs/{run_id}").status_code == 204
    assert dashboard.hub.get(run_id) is None


# ------------------------------------------------------------------ the Host allow-list

REBOUND = "http://evil.example:5000"


@pytest.mark.parametrize("path", ["/", "/static/js/main.js", "/api/system", "/api/lessons",
                                  "/api/runs", HANDSHAKE])
def test_rebinding_host_is_refused_everywhere(client, path):
    # After a rebinding the hostile page is same-origin with itself: Origin matches its Host.
    r = client.get(path, base_url=REBOUND, headers={"Origin": REBOUND})
    assert r.status_code == 403
    text = r.get_data(as_text=True)
    assert "--allow-host evil.example" in text and "Content-Security-Policy" in r.headers
    if path.startswith(("/api/", "/socket.io")):
        assert r.mimetype == "application/json" and "error" in r.get_json()
    else:
        assert r.mimetype == "text/html" and "<script" not in text


def test_rebinding_host_cannot_write_either(client, dashboard):
    refused(client.post("/api/runs", json={"lesson": "pool-map"}, base_url=REBOUND,
                        headers={"Origin": REBOUND}), "--allow-host")
    done = finished_run(dashboard)
    refused(client.delete(f"/api/runs/{done.id}", base_url=REBOUND), "--allow-host")
    assert list(dashboard.hub.runs) == [done.id]


def test_refused_host_is_not_echoed_as_html(client):
    r = client.get("/", headers={"Host": "<script>x</script>"})
    assert r.status_code == 403 and "<script>x" not in r.get_data(as_text=True)


@pytest.mark.parametrize("host", ["127.0.0.1:5000", "localhost:5000", "[::1]:5000", "LOCALHOST",
                                  "localhost"])
def test_loopback_names_are_served(client, host):
    assert client.get("/api/system", headers={"Host": host}).status_code == 200
    assert client.get(HANDSHAKE, headers={"Host": host}).status_code == 200


@pytest.mark.parametrize("host", ["localhost.evil.example:5000", "127.0.0.1.nip.io:5000",
                                  "0.0.0.0:5000", "127.0.0.2:5000", "[::1", "a b", "::1:5000"])
def test_other_names_are_refused_on_a_loopback_bind(client, host):
    assert client.get("/api/system", headers={"Host": host}).status_code == 403


def test_allow_host_adds_names(dashboard):
    app = create_app(dashboard, {"TESTING": True, "MPDASH_ALLOW_HOSTS": ["Lab-PC.local"]})
    c = app.test_client()
    assert c.get("/api/system", headers={"Host": "lab-pc.local:5000"}).status_code == 200
    assert c.get("/api/system", headers={"Host": "localhost:5000"}).status_code == 200
    assert c.get("/api/system", headers={"Host": "evil.example:5000"}).status_code == 403


class FakeSocket:
    def __init__(self, address):
        self.address = address

    def getsockname(self):
        return (self.address, 5000, 0, 0) if ":" in self.address else (self.address, 5000)


@pytest.mark.parametrize("local,served", [
    ("127.0.0.1", {"127.0.0.1", "localhost", "::1"}),
    ("::1", {"127.0.0.1", "localhost", "::1"}),
    ("127.0.0.2", {"127.0.0.2"}),                       # loopback, but not the open names
    ("192.0.2.7", {"192.0.2.7"}),                       # a wildcard bind, reached on the LAN
    ("::ffff:192.0.2.7", {"192.0.2.7"}),                # ... through a dual-stack socket
    ("fe80::1%eth0", {"fe80::1"}),
])
def test_the_address_a_connection_reached_is_served(local, served):
    environ = {"werkzeug.socket": FakeSocket(local)}
    assert origin.served_names(environ) == served
    assert origin.served_names(environ, frozenset({"lab.local"})) == served | {"lab.local"}
    assert origin.served_names({}) == {"127.0.0.1", "localhost", "::1"}   # the test client


def test_allow_host_values():
    assert origin.host_name("Lab-PC.Local") == "lab-pc.local"
    assert origin.host_name("[FD00:0::2]") == "fd00::2" == origin.host_name("fd00::2")
    assert origin.host_name("0.0.0.0") == "0.0.0.0"
    for bad in ["evil.example:5000", "http://evil.example", "", "a/b", "[::1]:80", "a b"]:
        with pytest.raises(ValueError, match="--allow-host"):
            origin.host_name(bad)


# ------------------------------------------------------------------ the real server, as `make run`

def test_real_server_refuses_the_issues_attacks(server_factory):
    server = server_factory()
    port = server.url.rsplit(":", 1)[1]
    post = lambda **kw: requests.post(f"{server.url}/api/runs", timeout=10, **kw)
    r = post(data=BODY, headers={"Origin": EVIL, "Content-Type": "text/plain"})
    assert r.status_code == 403 and "cross-origin" in r.json()["error"]
    r = post(data=BODY, headers={"Content-Type": "text/plain"})
    assert r.status_code == 403 and "application/json" in r.json()["error"]
    r = post(data="lesson=pool-map", headers={"Origin": EVIL,
                                              "Content-Type": "application/x-www-form-urlencoded"})
    assert r.status_code == 403
    r = post(json={"lesson": "pool-map"}, headers={"Origin": EVIL})
    assert r.status_code == 403 and "cross-origin" in r.json()["error"]
    rebound = {"Host": f"evil.example:{port}", "Origin": f"http://evil.example:{port}"}
    for path in ("/", "/api/runs", HANDSHAKE):
        r = requests.get(server.url + path, headers=rebound, timeout=10)
        assert r.status_code == 403 and "--allow-host evil.example" in r.text, (path, r.text)
    assert requests.get(f"{server.url}/api/runs", timeout=10).json() == []
    # The page and the handshake on the real names still work.
    assert requests.get(server.url + "/", timeout=10).status_code == 200
    assert requests.get(server.url + HANDSHAKE, headers={"Origin": server.url},
                        timeout=10).status_code == 200


def test_real_server_off_loopback_serves_its_address_only(server_factory):
    server = server_factory("--host", "127.0.0.2", env={"MPDASH_TOKEN": "t" * 20})
    port = server.url.rsplit(":", 1)[1]
    auth = {"Authorization": "Bearer " + "t" * 20}
    get = lambda host: requests.get(f"{server.url}/api/system", timeout=10,
                                    headers={**auth, "Host": host}).status_code
    assert get(f"127.0.0.2:{port}") == 200
    assert get(f"localhost:{port}") == get(f"evil.example:{port}") == 403


def test_real_server_with_allow_host(server_factory):
    server = server_factory("--allow-host", "mpdash.test")
    port = server.url.rsplit(":", 1)[1]
    r = requests.get(f"{server.url}/api/system", headers={"Host": f"mpdash.test:{port}"},
                     timeout=10)
    assert r.status_code == 200
    r = requests.get(f"{server.url}/api/system", headers={"Host": f"other.test:{port}"},
                     timeout=10)
    assert r.status_code == 403


def test_the_bound_host_is_served_and_allow_host_is_checked_as_parsed(capsys):
    import argparse
    from mpdash import serving
    parser = argparse.ArgumentParser()
    serving.add_serve_options(parser)
    args = parser.parse_args(["--host", "0.0.0.0", "--allow-host", "Lab.local"])
    assert serving.served_names(args) == ["0.0.0.0", "lab.local"]   # the printed link's name
    with pytest.raises(SystemExit):
        parser.parse_args(["--allow-host", "http://lab.local:5000"])
    assert "--allow-host takes a host name" in capsys.readouterr().err
