"""Headless Chromium (Debian's, never a downloaded one) for the end-to-end tests of the page.

One browser per test module; each test gets a fresh context and page against its own
``live_server``. Every page records console errors, uncaught exceptions and every request
it makes, and the test fails if any of them is an error or leaves the server.
"""
from __future__ import annotations

import os
import pathlib
from urllib.parse import urlsplit

import pytest

ARTIFACTS = pathlib.Path(__file__).resolve().parents[1] / "artifacts"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]


@pytest.fixture(scope="module")
def browser():
    sync_api = pytest.importorskip("playwright.sync_api")
    executable = os.environ.get("MPDASH_CHROMIUM", "/usr/bin/chromium")
    if not os.path.exists(executable):
        pytest.skip(f"no chromium at {executable} (make test installs Debian's)")
    pw = sync_api.sync_playwright().start()
    browser = pw.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
    yield browser
    browser.close()
    pw.stop()


class PageWatch:
    """What a page did that a test must not tolerate: console errors, exceptions, requests
    to anywhere but the server under test."""

    def __init__(self, page, base: str):
        self.base = urlsplit(base)
        self.errors: list[str] = []
        self.foreign: list[str] = []
        self.requests = 0
        page.on("console", self._console)
        page.on("pageerror", lambda exc: self.errors.append(f"uncaught: {exc}"))
        page.on("request", self._request)

    def _console(self, msg):
        if msg.type == "error":
            self.errors.append(f"console: {msg.text}")

    def _request(self, request):
        self.requests += 1
        url = urlsplit(request.url)
        if url.scheme in ("data", "blob", "about"):
            return
        if (url.hostname, url.port) != (self.base.hostname, self.base.port) or url.hostname != "127.0.0.1":
            self.foreign.append(request.url)

    def check(self):
        assert not self.errors, f"the page logged errors: {self.errors}"
        assert not self.foreign, f"requests left the server: {self.foreign}"


def open_page(browser, base: str, viewport=None):
    context = browser.new_context(viewport=viewport or {"width": 1600, "height": 1000})
    page = context.new_page()
    page.set_default_timeout(20_000)
    watch = PageWatch(page, base)
    page.goto(base + "/")
    page.wait_for_selector('[data-testid^="lesson-"] >> nth=0')
    page.wait_for_function("() => window.mpdash && window.mpdash.store.connected")
    return context, page, watch


@pytest.fixture
def page(browser, live_server):
    context, page, watch = open_page(browser, live_server)
    page.watch = watch
    yield page
    try:
        watch.check()
    finally:
        context.close()


@pytest.fixture
def artifacts():
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    return ARTIFACTS
