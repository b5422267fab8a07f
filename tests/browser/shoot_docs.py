"""Retake the README's screenshots: ``python -m tests.browser.shoot_docs http://127.0.0.1:PORT``.

Runs pool-map (long enough to see the tasks) against a running server and saves the main screen
in the light and dark themes and in presentation mode (on a 1280×720 projector) under
docs/screenshots/; then one finished run each of race-condition, daemon and
threads-vs-processes in presentation mode at 1280×720, their verdict on top (issue 16).
"""
from __future__ import annotations

import os
import pathlib
import sys

from playwright.sync_api import sync_playwright

from tests.browser.conftest import CHROMIUM_ARGS

OUT = pathlib.Path(__file__).resolve().parents[2] / "docs" / "screenshots"
LOOKS = {"light": (False, "light"), "dark": (False, "dark"), "presentation": (True, "light")}
PROJECTOR = {"width": 1280, "height": 720}
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
    page.wait_for_timeout(400)
    page.mouse.move(0, 0)
    page.evaluate("window.scrollTo(0, 0)")


def shoot_verdicts(browser, base: str) -> None:
    for name, (lesson, params) in VERDICTS.items():
        context = browser.new_context(viewport=PROJECTOR)
        context.add_init_script("localStorage.setItem('mpdash.theme', 'light');"
                                "localStorage.setItem('mpdash.presentation', '0');")
        page = context.new_page()
        page.goto(base + "/")
        page.wait_for_function("() => window.mpdash && window.mpdash.store.connected")
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
            context = browser.new_context(viewport=PROJECTOR if presenting else {"width": 1600, "height": 1000})
            context.add_init_script(f"localStorage.setItem('mpdash.theme', '{theme}');"
                                    "localStorage.setItem('mpdash.presentation', '0');")
            page = context.new_page()
            page.goto(base + "/")
            page.wait_for_function("() => window.mpdash && window.mpdash.store.connected")
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


if __name__ == "__main__":
    shoot(sys.argv[1].rstrip("/"))
