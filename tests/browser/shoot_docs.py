"""Retake the README's screenshots: ``python -m tests.browser.shoot_docs http://127.0.0.1:PORT``.

Runs pool-map (long enough to see the tasks) against a running server and saves the main screen
in the light and dark themes and in presentation mode under docs/screenshots/.
"""
from __future__ import annotations

import os
import pathlib
import sys

from playwright.sync_api import sync_playwright

from tests.browser.conftest import CHROMIUM_ARGS

OUT = pathlib.Path(__file__).resolve().parents[2] / "docs" / "screenshots"
LOOKS = {"light": (False, "light"), "dark": (False, "dark"), "presentation": (True, "light")}


def shoot(base: str) -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=os.environ.get("MPDASH_CHROMIUM", "/usr/bin/chromium"),
                                     args=CHROMIUM_ARGS)
        for name, (presenting, theme) in LOOKS.items():
            context = browser.new_context(viewport={"width": 1600, "height": 1000})
            context.add_init_script(f"localStorage.setItem('mpdash.theme', '{theme}');")
            page = context.new_page()
            page.goto(base + "/")
            page.wait_for_function("() => window.mpdash && window.mpdash.store.connected")
            page.click('[data-testid="lesson-pool-map"]')
            page.fill('[data-testid="param-spin"]', "0.25")
            page.fill('[data-testid="param-items"]', "12")
            if presenting:   # the lesson list hides in presentation mode: pick the lesson first
                page.click('[data-testid="presentation-toggle"]')
            before = page.locator('[data-testid="run-item"]').count()
            page.click('[data-testid="run"]')
            page.wait_for_function(f"() => document.querySelectorAll('[data-testid=run-item]').length > {before}")
            page.wait_for_function(
                "() => ['finished','failed','stopped'].includes(document.querySelector('[data-testid=run-state]').textContent)",
                timeout=60_000)
            page.wait_for_timeout(400)
            page.mouse.move(0, 0)
            page.evaluate("window.scrollTo(0, 0)")
            page.screenshot(path=str(OUT / f"{name}.png"))
            context.close()
        browser.close()


if __name__ == "__main__":
    shoot(sys.argv[1].rstrip("/"))
