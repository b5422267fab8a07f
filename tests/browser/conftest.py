"""Headless Chromium (Debian's, never a downloaded one) for the end-to-end tests of the page.

One browser per test module; each test gets a fresh context and page against its own
``live_server``. Every page records console errors, uncaught exceptions and every request
it makes, and the test fails if any of them is an error or leaves the server.
"""
from __future__ import annotations

import json
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
    to anywhere but the server under test. The one watcher of every browser test."""

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
        if (url.hostname, url.port) != (self.base.hostname, self.base.port):
            self.foreign.append(request.url)

    def check(self):
        assert not self.errors, f"the page logged errors: {self.errors}"
        assert not self.foreign, f"requests left the server: {self.foreign}"


def open_page(browser, base: str, viewport=None, url: str | None = None, lessons: bool = True):
    """A fresh context and page at ``url`` (default: the server's page), connected."""
    context = browser.new_context(viewport=viewport or {"width": 1600, "height": 1000})
    page = context.new_page()
    page.set_default_timeout(20_000)
    watch = PageWatch(page, base)
    page.goto(url or base + "/")
    if lessons:
        page.wait_for_selector('[data-testid^="lesson-"] >> nth=0')
    page.wait_for_function("() => window.mpdash && window.mpdash.store.connected")
    return context, page, watch


# ------------------------------------------------------------------ screens

PROJECTOR = {"width": 1280, "height": 720}
LAPTOP = {"width": 1366, "height": 768}


def present(page):
    if not page.evaluate("document.documentElement.classList.contains('presenting')"):
        page.click('[data-testid="presentation-toggle"]')
    page.wait_for_function("() => document.documentElement.classList.contains('presenting')")


def check_fits(page, viewport, first_screen=()):
    """One-row top bar, no sideways overflow, and the named hooks inside the first screen."""
    fit = page.evaluate("""ids => {
        const bar = document.querySelector('[data-testid=topbar]');
        const items = [...bar.children].filter(e => e.offsetParent !== null && getComputedStyle(e).position !== 'absolute')
            .map(e => e.getBoundingClientRect());
        const box = id => { const e = document.querySelector(`[data-testid="${id}"]`); const r = e.getBoundingClientRect();
            return {id, top: r.top, bottom: r.bottom, left: r.left, right: r.right, visible: e.offsetParent !== null}; };
        return {scrollWidth: document.documentElement.scrollWidth, bodyWidth: document.body.scrollWidth,
                lowestTop: Math.max(...items.map(r => r.top)), highestBottom: Math.min(...items.map(r => r.bottom)),
                bar: bar.getBoundingClientRect().height, boxes: ids.map(box)};
    }""", list(first_screen))
    assert fit["scrollWidth"] <= viewport["width"] and fit["bodyWidth"] <= viewport["width"], fit
    # One row: every item of the bar starts above the bottom of every other one.
    assert fit["lowestTop"] < fit["highestBottom"], fit
    assert fit["bar"] < 100, fit
    for b in fit["boxes"]:
        assert b["visible"], b
        assert b["top"] >= 0 and b["bottom"] <= viewport["height"] and b["right"] <= viewport["width"], b
    return fit


# ------------------------------------------------------------------ what a student does

TERMINAL = ("finished", "failed", "stopped")


def pick(page, lesson):
    page.click(f'[data-testid="lesson-{lesson}"]')
    page.wait_for_selector(f'#code[data-lesson="{lesson}"]')


def set_param(page, name, value):
    field = page.locator(f'[data-testid="param-{name}"]')
    if not field.is_visible() and page.locator('[data-testid="params-toggle"]').is_visible():
        page.click('[data-testid="params-toggle"]')   # the parameters folded into a popover
    field.fill(str(value))


def start(page, lesson, **params):
    """Pick a lesson, fill in parameters, press Run."""
    pick(page, lesson)
    for name, value in params.items():
        set_param(page, name, value)
    page.click('[data-testid="run"]')


def run_state(page) -> str:
    return page.text_content('[data-testid="run-state"]').strip()


def wait_state(page, states=TERMINAL, timeout=30_000):
    try:
        page.wait_for_function(
            "states => states.includes(document.querySelector('[data-testid=run-state]').textContent.trim())",
            arg=list(states), timeout=timeout)
    except Exception:
        shown = page.evaluate("""() => { const s = window.mpdash.store;
            return {selected: s.selectedRun, seq: s.seq, connected: s.connected,
                    runs: [...s.runs.values()].map(r => [r.id, r.state, r.seq, r.full, r.loading])}; }""")
        raise AssertionError(f"state stayed {run_state(page)!r}; page: {shown}") from None
    return run_state(page)


def wait_run_drawn(page, timeout=30_000):
    """Until the shown run is over and the page has everything of it (its full record, every
    process ended) and has drawn it: the last layout shift of a run's end (its pools panel, its
    verdict) is past, so a click lands where the element was found."""
    page.wait_for_function("""() => { const s = window.mpdash.store, r = s.runs.get(s.selectedRun);
        return r && r.full && ['finished', 'failed', 'stopped'].includes(r.state)
            && [...r.procs.values()].every(p => p.ended_at && p.end); }""", timeout=timeout)
    settle(page)


def rows(page):
    return page.eval_on_selector_all('[data-testid="proc-row"]', """els => els.map(e => ({
        pid: +e.dataset.pid, role: e.dataset.role, state: e.dataset.state, end: e.dataset.end || null,
        exitcode: e.dataset.exitcode === undefined ? null : +e.dataset.exitcode}))""")


def wait_all_exited(page, n, timeout=15_000):
    try:
        page.wait_for_function(
            """n => { const r = [...document.querySelectorAll('[data-testid=proc-row]')];
                     return r.length >= n && r.every(e => e.dataset.state === 'exited' && e.dataset.exitcode !== undefined); }""",
            arg=n, timeout=timeout)
    except Exception:
        raise AssertionError(f"not every process ended with a code: {rows(page)}") from None


def result_of(page):
    text = page.inner_text('[data-testid="result"]').strip()
    return json.loads(text) if text else None


def settle(page, timeout=5_000):
    """Until no finite CSS transition or animation runs and two frames have been drawn: what a
    screenshot or a "nothing changed" check waits for, instead of a fixed sleep. (Endless ones,
    a live dot's pulse, never settle and are not waited for.)"""
    page.wait_for_function("""() => document.getAnimations().every(a =>
        a.playState !== 'running' || !a.effect || a.effect.getComputedTiming().iterations === Infinity)""",
                           timeout=timeout)
    page.evaluate("() => new Promise(r => requestAnimationFrame(() => requestAnimationFrame(r)))")


def record_emits(page):
    """From now on, every Socket.IO emit of the page is recorded (``emitted(page)``): how a
    test proves a key press sent nothing, synchronously, instead of sleeping and hoping."""
    page.evaluate("""() => { const s = window.mpdash.socket; const emit = s.emit.bind(s);
        window.__emitted = [];
        s.emit = (name, ...args) => { window.__emitted.push(name); return emit(name, ...args); }; }""")


def emitted(page) -> list[str]:
    return page.evaluate("window.__emitted")


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
