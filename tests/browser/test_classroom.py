"""A classroom in real token mode: the server bound to a loopback address other than
127.0.0.1, one presenter, two viewers (one joining after the run), and a page without a token.

Unlike test_page.py's viewer test, nothing here is faked: the roles come from the tokens.
"""
from __future__ import annotations

import threading

import pytest
import requests

from tests.browser.conftest import (TERMINAL, emitted, open_page, pick, record_emits, rows,
                                    run_state, set_param, wait_all_exited)

pytestmark = pytest.mark.browser

PRESENTER, VIEWER = "presenter-token-for-the-test", "viewer-token-for-the-test"
HOST = "127.0.0.2"     # loopback, but not an "open" host: the app wants tokens


@pytest.fixture
def classroom(dashboard):
    from werkzeug.serving import make_server
    from mpdash.web import create_app
    app = create_app(dashboard, {"TESTING": True, "MPDASH_TOKEN": PRESENTER,
                                 "MPDASH_VIEWER_TOKEN": VIEWER})
    try:
        server = make_server(HOST, 0, app, threaded=True)
    except OSError as exc:
        pytest.skip(f"cannot bind {HOST}: {exc}")
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://{HOST}:{server.server_port}"
    server.shutdown()
    thread.join(timeout=5)


def join(browser, url, base):
    return open_page(browser, base, viewport={"width": 1400, "height": 900}, url=url,
                     lessons=False)


state = run_state


def test_presenter_runs_viewers_watch(browser, classroom):
    # No token: refused, with a sentence that says what to do.
    refused = requests.get(classroom + "/", timeout=5)
    assert refused.status_code == 401
    assert "token" in refused.text and "<" not in refused.text
    assert requests.get(classroom + "/?token=wrong", timeout=5).status_code == 401

    opened = []
    try:
        ctx, teacher, t_watch = join(browser, f"{classroom}/?token={PRESENTER}", classroom)
        opened.append((ctx, t_watch))
        assert "token" not in teacher.url          # redirected: the token left the address bar
        link = teacher.locator('[data-testid="viewer-link"]')
        link.wait_for(state="visible")
        assert link.inner_text() == f"{classroom}/?token={VIEWER}"

        ctx, student, s_watch = join(browser, link.inner_text(), classroom)
        opened.append((ctx, s_watch))
        assert not student.locator('[data-testid="run"]').is_visible()
        assert not student.locator('[data-testid="stop"]').is_visible()

        pick(teacher, "pool-map")
        set_param(teacher, "spin", 0.4)
        set_param(teacher, "items", 6)
        teacher.click('[data-testid="run"]')
        # The student sees the run live, not only once it is over.
        student.wait_for_function(
            "() => document.querySelector('[data-testid=run-state]').textContent.trim() === 'running'")
        assert student.locator('[data-testid="param-spin"]').is_disabled()
        for page in (teacher, student):
            page.wait_for_function(
                "s => s.includes(document.querySelector('[data-testid=run-state]').textContent.trim())",
                arg=list(TERMINAL), timeout=30_000)
            wait_all_exited(page, 4)
        assert state(teacher) == state(student) == "finished"

        # A viewer can neither start a run from the page nor through the API.
        runs_before = requests.get(classroom + "/api/runs", timeout=5,
                                   headers={"Authorization": f"Bearer {PRESENTER}"}).json()
        student.locator("body").click(position={"x": 5, "y": 880})
        record_emits(student)
        student.keyboard.press("r")
        assert emitted(student) == []     # sent nothing (recorded synchronously, no sleep)
        denied = student.request.post(classroom + "/api/runs", data={"lesson": "pool-map"})
        assert denied.status == 403
        runs_after = requests.get(classroom + "/api/runs", timeout=5,
                                  headers={"Authorization": f"Bearer {PRESENTER}"}).json()
        assert [r["id"] for r in runs_after] == [r["id"] for r in runs_before]

        # A student who joins after the end sees the whole run.
        ctx, late, l_watch = join(browser, f"{classroom}/?token={VIEWER}", classroom)
        opened.append((ctx, l_watch))
        late.wait_for_function(
            "() => document.querySelector('[data-testid=run-state]').textContent.trim() === 'finished'")
        wait_all_exited(late, 4)
        key = lambda page: sorted((r["pid"], r["role"], r["exitcode"], r["end"]) for r in rows(page))
        assert key(late) == key(teacher) == key(student)
        text = lambda page, tid: page.inner_text(f'[data-testid="{tid}"]')
        for tid in ("result", "findings"):
            assert text(late, tid) == text(teacher, tid) == text(student, tid)
        assert not late.locator('[data-testid="viewer-link"]').is_visible()
        for _, watch in opened:
            watch.check()
    finally:
        for ctx, _ in opened:
            ctx.close()
