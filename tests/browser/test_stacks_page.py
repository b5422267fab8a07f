"""The page answers "where is it stuck?": the stall banner, the Stacks panel (button, key t, row
action), a lesson frame that marks its line in the code, and the same Snapshots in replay."""
from __future__ import annotations

import os
import shutil
import sys

import pytest
import requests

from mpdash.dashboard import Dashboard
from mpdash.state import Limits
from tests.leaks import assert_none_left

PROGRAMS = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "programs")


@pytest.fixture
def dashboard():
    """The conftest's dashboard with a shorter stall, so the banner comes sooner."""
    dash = Dashboard(Limits(), stall=1.5)
    yield dash
    dash.close()
    assert_none_left(os.getpid())


def _follow(page, run_id):
    page.wait_for_function("(id) => window.mpdash.store.selectedRun === id", arg=run_id)


def test_a_stalled_run_shows_the_banner_and_its_stacks(page, dashboard, artifacts):
    run = dashboard.engine.start_command(
        [sys.executable, os.path.join(PROGRAMS, "join_before_drain.py")], timeout=40)
    _follow(page, run.id)
    banner = page.locator('[data-testid="stall-banner"]')
    banner.wait_for(state="visible", timeout=15_000)
    text = banner.inner_text()
    assert "stuck for" in text and "where each process is waiting" in text
    assert "join_before_drain.py:" in text        # the main's own line, not a library frame
    pids = sorted(run.live_pids())
    assert len(pids) == 2
    for pid in pids:
        assert banner.locator(f'li[data-pid="{pid}"]').count() == 1
    # the stall Snapshot is in the panel already; the button takes a new one
    panel = page.locator('[data-testid="stacks"]')
    panel.wait_for(state="visible")
    first = page.get_attribute("#stacks", "data-seq")
    page.click('[data-testid="stacks-button"]')
    page.wait_for_function("(s) => document.querySelector('#stacks').dataset.seq !== s", arg=first)
    procs = panel.locator('[data-testid="stack-proc"]')
    assert procs.count() == 2
    child = panel.locator(f'[data-testid="stack-proc"][data-pid="{max(pids, key=lambda p: p != run.main_pid)}"]')
    assert "_send" in child.inner_text() and "_feed" in child.inner_text()
    # library frames muted, the user's own frame in full strength
    main = panel.locator(f'[data-testid="stack-proc"][data-pid="{run.main_pid}"]')
    assert main.locator(".frame.own").count() >= 1 and main.locator(".frame.lib").count() >= 1
    assert main.locator(".frame.innermost").count() == 1
    # the key t takes another one
    second = page.get_attribute("#stacks", "data-seq")
    page.locator("body").click(position={"x": 5, "y": 990})
    page.keyboard.press("t")
    page.wait_for_function("(s) => document.querySelector('#stacks').dataset.seq !== s", arg=second)
    # the row action of a process puts that process first, marked
    worker = next(p for p in pids if p != run.main_pid)
    third = page.get_attribute("#stacks", "data-seq")
    page.click(f'[data-testid="proc-stacks"][data-pid="{worker}"]')
    page.wait_for_function("(s) => document.querySelector('#stacks').dataset.seq !== s", arg=third)
    assert panel.locator('[data-testid="stack-proc"]').first.get_attribute("data-pid") == str(worker)
    assert "focus" in panel.locator('[data-testid="stack-proc"]').first.get_attribute("class")
    page.set_viewport_size({"width": 1600, "height": 1700})
    page.evaluate("() => window.scrollTo(0, 0)")
    page.screenshot(path=str(artifacts / "stacks.png"), full_page=False)
    page.set_viewport_size({"width": 1600, "height": 1000})
    if os.environ.get("MPDASH_SHOOT_DOCS"):
        shutil.copy(artifacts / "stacks.png",
                    os.path.join(os.path.dirname(PROGRAMS), "..", "docs", "screenshots", "stacks.png"))
    dashboard.engine.stop(run.id)
    page.wait_for_function("() => document.querySelector('[data-testid=run-state]').textContent === 'stopped'")
    assert page.locator('[data-testid="stacks-button"]').is_hidden()   # only on a live run
    # stopped while stuck: the banner stays to say where it was; replay shows the stored
    # Snapshots as they were, and none at the start of the run
    page.wait_for_selector('[data-testid="scrubber"]', state="visible")
    assert banner.is_visible()
    assert panel.locator('[data-testid="stack-proc"]').count() == 2
    page.locator('[data-testid="scrubber"]').fill("0")
    page.wait_for_function("() => document.querySelector('[data-testid=stacks]').hidden")
    assert banner.is_hidden()
    page.locator('[data-testid="scrubber"]').fill("1000")
    panel.wait_for(state="visible")
    banner.wait_for(state="visible")


def test_a_frame_of_the_lesson_marks_its_line_in_the_code(page, live_server):
    answer = requests.post(live_server + "/api/runs", json={
        "lesson": "threads-vs-processes", "params": {"io_bound": True, "seconds": 5.0, "workers": 2}},
        timeout=10)
    assert answer.status_code == 201, answer.text
    run_id = answer.json()["id"]
    _follow(page, run_id)
    page.wait_for_function("() => !document.querySelector('[data-testid=stacks-button]').disabled")
    # on a projector (1280 px, presentation mode) the live run's bar, Stacks included, is one row
    from tests.browser.conftest import PROJECTOR, check_fits, present
    page.set_viewport_size(PROJECTOR)
    present(page)
    check_fits(page, PROJECTOR, ("run", "stop", "stacks-button"))
    page.click('[data-testid="stacks-button"]')
    link = page.locator('[data-testid="frame-link"]').first
    link.wait_for(state="visible")
    line = link.get_attribute("data-line")
    link.click()
    marked = page.locator('#code .code-line.marked')
    marked.wait_for(state="visible")
    assert marked.get_attribute("data-line") == line
    requests.post(f"{live_server}/api/runs/{run_id}/stop", timeout=10)
