"""§12 on the page (issue 13): the section after the §11 map, a pitfall that shows itself in
the panels, and the queue deadlock's stall banner with the two stacks once stacks exist."""
from __future__ import annotations

import importlib.util

import pytest
import requests

from tests.browser.conftest import pick, set_param, wait_state

pytestmark = pytest.mark.browser

PITFALLS = ["queue-deadlock", "main-guard", "pickling", "globals-not-shared",
            "fork-with-threads", "pool-overhead"]
HAS_STACKS = importlib.util.find_spec("mpdash.stall") is not None   # issue 11


def keep(page, artifacts, name):
    """A screenshot for the test's artifacts (docs/screenshots/: tests/browser/shoot_docs.py)."""
    page.evaluate("() => window.scrollTo(0, 0)")
    page.mouse.move(0, 0)
    page.screenshot(path=str(artifacts / name))


def test_section_12_follows_the_summary_map(page):
    ids = page.eval_on_selector_all('[data-testid="lesson-list"] .lesson-btn',
                                    "nodes => nodes.map(n => n.dataset.lessonId)")
    at = ids.index("summary")
    assert ids[at - 1] == "process-costs" and ids[at + 1:] == PITFALLS, ids
    assert "When it goes wrong" in page.inner_text('[data-testid="lesson-list"]')
    pick(page, "process-costs")
    page.locator("body").click(position={"x": 5, "y": 900})
    page.keyboard.press("j")
    page.wait_for_selector('[data-testid="lesson-summary"][aria-current="true"]')
    rules = page.locator('[data-testid="pitfall-rules"] li')
    assert rules.count() == len(PITFALLS)
    assert "get() everything first, then join()" in rules.first.inner_text()
    # each rule links to its lesson
    rules.nth(5).locator("button").click()
    page.wait_for_selector('[data-testid="lesson-pool-overhead"][aria-current="true"]')
    assert page.is_visible('[data-testid="param-fixed"]')
    assert not page.is_checked('[data-testid="param-fixed"]')


def test_main_guard_shows_the_reimported_top_level_and_the_crashed_children(page, artifacts):
    pick(page, "main-guard")
    page.click('[data-testid="run"]')
    assert wait_state(page, timeout=60_000) == "finished"
    page.wait_for_selector('[data-testid="finding-children_failed"]')
    assert page.get_attribute('[data-testid="finding-children_failed"]', "data-value") == "2"
    error = page.get_attribute('[data-testid="finding-child_error"]', "data-value")
    assert error.startswith("RuntimeError: An attempt has been made to start a new process")
    output = page.inner_text('[data-testid="output"]')
    assert output.count("top level runs in pid") == 3, output
    assert "__mp_main__" in output and "RuntimeError" in output
    keep(page, artifacts, "pitfall-main-guard.png")


def test_pool_overhead_floods_the_messages_then_batches(page, artifacts):
    pick(page, "pool-overhead")
    set_param(page, "tasks", 4000)
    set_param(page, "repeats", 1)
    page.click('[data-testid="run"]')
    assert wait_state(page, timeout=60_000) == "finished"
    assert page.get_attribute('[data-testid="finding-chunksize"]', "data-value") == "1"
    card = page.locator('[data-testid="pool-tasks"]')
    # every task counted, summarised or not: the 4000 items and the 2 of the warm-up map
    assert card.get_attribute("data-tasks") == "4002", card.inner_text()
    assert "8,004 messages" in card.inner_text()
    keep(page, artifacts, "pitfall-pool-overhead.png")
    if not page.is_visible('[data-testid="param-fixed"]'):
        page.click('[data-testid="params-toggle"]')   # the parameters folded into a popover
    page.check('[data-testid="param-fixed"]')
    before = page.locator('[data-testid="run-item"]').count()
    page.click('[data-testid="run"]')
    page.wait_for_function(f"() => document.querySelectorAll('[data-testid=run-item]').length > {before}")
    assert wait_state(page, timeout=60_000) == "finished"
    page.wait_for_selector('[data-testid="finding-chunksize"][data-value="500"]')
    assert card.get_attribute("data-tasks") == "10", card.inner_text()   # 8 chunks + 2
    assert "20 messages" in card.inner_text()


@pytest.mark.skipif(not HAS_STACKS, reason="needs issue 11 (stacks and stall detection), "
                                            "not on this branch's main yet")
def test_queue_deadlock_shows_the_stall_banner_and_both_stacks(page, live_server, artifacts):
    pick(page, "queue-deadlock")
    page.click('[data-testid="run"]')
    banner = page.locator('[data-testid="stall-banner"]')
    banner.wait_for(state="visible", timeout=15_000)   # stall (3 s) + the dump, in a 6 s hang
    assert "stuck for" in banner.inner_text()
    assert banner.locator("li[data-pid]").count() == 2
    panel = page.locator('[data-testid="stacks"]')
    panel.wait_for(state="visible")
    procs = panel.locator('[data-testid="stack-proc"]')
    assert procs.count() == 2
    text = panel.inner_text()
    assert "join" in text                              # the main, waiting for the child
    assert "_feed" in text and "_send" in text         # the child's feeder thread, in a write
    keep(page, artifacts, "pitfall-queue-deadlock.png")
    assert wait_state(page, timeout=20_000) == "finished"   # the lesson ends the hang itself
    run_id = page.evaluate("() => window.mpdash.store.selectedRun")
    run = requests.get(f"{live_server}/api/runs/{run_id}", timeout=10).json()
    stalls = [s for s in run["stacks"] if s["reason"] == "stall"]
    assert stalls, "the stall Snapshot stays in the run"
    assert run["ended_at"] - stalls[0]["t"] < 10      # ended itself within 10 s of the stall
    found = {f["key"]: f["value"] for f in run["findings"]}
    assert found["deadlocked"] is True
