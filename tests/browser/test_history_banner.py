"""The page says so while run history is not being written (issue 17): the --data folder is
removed under a served page, the banner appears with the reason and the folder, runs still
work live, and it goes away when the folder is back (a late-opened page shows it too)."""
from __future__ import annotations

import os
import shutil

import pytest

from mpdash.dashboard import Dashboard
from mpdash.state import Limits
from tests.browser.conftest import open_page, start, wait_state
from tests.leaks import assert_none_left

pytestmark = pytest.mark.browser

BANNER = '[data-testid="history-banner"]'


@pytest.fixture
def data_folder(tmp_path):
    return str(tmp_path / "data")


@pytest.fixture
def dashboard(data_folder):   # the conftest's app and live_server, with history kept
    dash = Dashboard(Limits(), data_dir=data_folder)
    yield dash
    dash.close()
    assert_none_left(dash)


def banner_text(page) -> str:
    return page.inner_text(BANNER).strip()


def test_history_banner_while_the_folder_is_gone(page, browser, live_server, data_folder):
    assert page.locator(BANNER).is_hidden()
    shutil.rmtree(data_folder)
    page.wait_for_selector(BANNER, state="visible", timeout=10_000)
    assert banner_text(page) == f"runs are not being saved: the folder was removed ({data_folder})"

    start(page, "process-target")                  # runs go on, live
    assert wait_state(page) == "finished"
    page.wait_for_function(
        "() => document.querySelector('[data-testid=history-banner]').textContent"
        ".includes('1 run kept in memory')", timeout=10_000)

    context, late, watch = open_page(browser, live_server)   # from /api/system and hello
    try:
        late.wait_for_selector(BANNER, state="visible", timeout=10_000)
        assert banner_text(late).startswith("runs are not being saved: the folder was removed")
        os.mkdir(data_folder)
        for shown in (page, late):
            shown.wait_for_selector(BANNER, state="hidden", timeout=10_000)
        watch.check()
    finally:
        context.close()
