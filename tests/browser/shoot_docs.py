"""Retake the README's screenshots: ``python -m tests.browser.shoot_docs http://127.0.0.1:PORT``.

Runs pool-map (long enough to see the tasks) against a running server and saves the main screen
in the light and dark themes and in presentation mode (on a 1280×720 projector) under
docs/screenshots/; then one finished run each of race-condition, daemon and
threads-vs-processes in presentation mode at 1280×720, their verdict on top (issue 16).
``... shoot_docs URL pitfalls`` takes the three §12 shots instead (issue 13): queue-deadlock
while it hangs (the stall banner and the two stacks, on a server with stall detection), and
main-guard and pool-overhead once finished.
"""
from __future__ import annotations

import os
import pathlib
import sys

from playwright.sync_api import sync_playwright

from tests.browser.conftest import CHROMIUM_ARGS, PROJECTOR, settle

OUT = pathlib.Path(__file__).resolve().parents[2] / "docs" / "screenshots"
LOOKS = {"light": (False, "light"), "dark": (False, "dark"), "presentation": (True, "light")}

VERDICTS = {   # file name -> lesson, parameters (small, so a retake is quick)
    "verdict-race-condition": ("race-condition", {"processes": 4, "times": 100_000}),
    "verdict-daemon": ("daemon", {}),
    "verdict-threads-vs-processes": ("threads-vs-processes", {"workers": 2, "work": 20_000_000}),
}


def fill(page, name, value) -> None:
    """Type a parameter, opening the folded parameters first when the top bar folded them."""
    field = page.locator(f'[data-testid="param-{name}"]')
    if not field.is_visible():
        page.click('[data-testid="params-toggle"]')
    field.fill(str(value))


def run_to_the_end(page) -> None:
    before = page.locator('[data-testid="run-item"]').count()
    page.click('[data-testid="run"]')
    page.wait_for_function(f"() => document.querySelectorAll('[data-testid=run-item]').length > {before}")
    page.wait_for_function(
        "() => ['finished','failed','stopped'].includes(document.querySelector('[data-testid=run-state]').textContent)",
        timeout=60_000)
    settle(page)
    page.mouse.move(0, 0)
    page.evaluate("window.scrollTo(0, 0)")


def open_shot(browser, base: str, viewport: dict, theme: str = "light"):
    """A fresh context in ``theme``, presentation off (a test may toggle it), at the page,
    connected: (context, page)."""
    context = browser.new_context(viewport=viewport)
    context.add_init_script(f"localStorage.setItem('mpdash.theme', '{theme}');"
                            "localStorage.setItem('mpdash.presentation', '0');")
    page = context.new_page()
    page.goto(base + "/")
    page.wait_for_function("() => window.mpdash && window.mpdash.store.connected")
    return context, page


def shoot_verdicts(browser, base: str) -> None:
    for name, (lesson, params) in VERDICTS.items():
        context, page = open_shot(browser, base, PROJECTOR)
        page.click(f'[data-testid="lesson-{lesson}"]')
        for key, value in params.items():
            fill(page, key, value)
        page.click('[data-testid="presentation-toggle"]')
        run_to_the_end(page)
        page.screenshot(path=str(OUT / f"{name}.png"))
        context.close()


def shoot(base: str) -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=os.environ.get("MPDASH_CHROMIUM", "/usr/bin/chromium"),
                                     args=CHROMIUM_ARGS)
        for name, (presenting, theme) in LOOKS.items():
            context, page = open_shot(browser, base, PROJECTOR if presenting else
                                      {"width": 1600, "height": 1000}, theme)
            page.click('[data-testid="lesson-pool-map"]')
            fill(page, "spin", "0.25")
            fill(page, "items", "12")
            if presenting:   # the lesson list hides in presentation mode: pick the lesson first
                page.click('[data-testid="presentation-toggle"]')
            run_to_the_end(page)
            page.screenshot(path=str(OUT / f"{name}.png"))
            context.close()
        shoot_verdicts(browser, base)
        browser.close()


def _run(page):
    """Press Run and wait until the page shows the new run (not the previous one's state)."""
    before = page.locator('[data-testid="run-item"]').count()
    page.click('[data-testid="run"]')
    page.wait_for_function(f"() => document.querySelectorAll('[data-testid=run-item]').length > {before}")
    page.wait_for_function("() => document.querySelector('[data-testid=run-state]').textContent === 'running'")


def _finished(page):
    page.wait_for_function(
        "() => ['finished','failed','stopped'].includes(document.querySelector('[data-testid=run-state]').textContent)",
        timeout=90_000)


def _queue_deadlock(page):
    """Mid-hang: the banner and the Snapshot come after the stall (3 s); shoot them, then wait."""
    _run(page)
    try:
        page.wait_for_selector('[data-testid="stall-banner"]', state="visible", timeout=15_000)
        page.wait_for_selector('[data-testid="stack-proc"]', state="visible", timeout=5_000)
        settle(page)
        return True
    except Exception:   # a server without stall detection: the finished run instead
        _finished(page)
        return False


def _main_guard(page):
    _run(page)
    _finished(page)
    page.locator('[data-testid="output"]').scroll_into_view_if_needed()
    return True


def _pool_overhead(page):
    fill(page, "tasks", 4000)
    fill(page, "repeats", 1)
    _run(page)
    _finished(page)
    return True


PITFALL_SHOTS = {"queue-deadlock": _queue_deadlock, "main-guard": _main_guard,
                 "pool-overhead": _pool_overhead}


def shoot_pitfalls(base: str) -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=os.environ.get("MPDASH_CHROMIUM", "/usr/bin/chromium"),
                                     args=CHROMIUM_ARGS)
        for lesson, act in PITFALL_SHOTS.items():
            context, page = open_shot(browser, base, {"width": 1600, "height": 1300})
            page.click(f'[data-testid="lesson-{lesson}"]')
            page.wait_for_selector(f'#code[data-lesson="{lesson}"]')
            if lesson != "main-guard":
                page.evaluate("window.scrollTo(0, 0)")
            page.mouse.move(0, 0)
            stalled = act(page)
            if lesson == "queue-deadlock" and not stalled:
                print("queue-deadlock: no stall banner on this server; shot the finished run")
            page.screenshot(path=str(OUT / f"pitfall-{lesson}.png"))
            _finished(page)
            context.close()
        browser.close()


if __name__ == "__main__":
    if sys.argv[2:] == ["pitfalls"]:
        shoot_pitfalls(sys.argv[1].rstrip("/"))
    else:
        shoot(sys.argv[1].rstrip("/"))
