"""Full-page screenshots of every lesson at 1366 × 768 (issue 19):
``python -m tests.browser.shoot_lessons http://127.0.0.1:PORT [lesson ...]``.

Each lesson is run with its defaults (pool-map with a little spin, so its tasks are wide enough
to read) and shot once its run has ended, into docs/screenshots/lessons/<id>.png; pool-map and
race-condition (and the README's threads-vs-processes and crash-isolation) are also saved as
docs/screenshots/<id>.png.
"""
from __future__ import annotations

import os
import pathlib
import sys

import requests
from playwright.sync_api import sync_playwright

from tests.browser.conftest import CHROMIUM_ARGS, set_param, settle

DOCS = pathlib.Path(__file__).resolve().parents[2] / "docs" / "screenshots"
PARAMS = {"pool-map": {"spin": "0.2", "items": "9"}}
README = ("pool-map", "race-condition", "threads-vs-processes", "crash-isolation")
TERMINAL = "['finished','failed','stopped'].includes(document.querySelector('[data-testid=run-state]').textContent)"


def shoot(base: str, only: list[str]) -> None:
    (DOCS / "lessons").mkdir(parents=True, exist_ok=True)
    lessons = [l["id"] for l in requests.get(base + "/api/lessons", timeout=10).json()]
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=os.environ.get("MPDASH_CHROMIUM", "/usr/bin/chromium"),
                                     args=CHROMIUM_ARGS)
        context = browser.new_context(viewport={"width": 1366, "height": 768})
        context.add_init_script("localStorage.setItem('mpdash.theme', 'light');")
        page = context.new_page()
        page.goto(base + "/")
        page.wait_for_function("() => window.mpdash && window.mpdash.store.connected")
        for lesson in only or lessons:
            page.click(f'[data-testid="lesson-{lesson}"]')
            page.wait_for_selector(f'#code[data-lesson="{lesson}"]')
            for name, value in PARAMS.get(lesson, {}).items():
                set_param(page, name, value)   # opens the folded parameters if need be
            before = page.locator('[data-testid="run-item"]').count()
            shown = page.evaluate("() => window.mpdash.store.selectedRun")
            page.click('[data-testid="run"]')
            page.wait_for_function(f"() => document.querySelectorAll('[data-testid=run-item]').length > {before}")
            # The new run, not the lesson's previous one (selected with it), must be shown and over.
            page.wait_for_function(f"""([shown, lesson]) => {{ const s = window.mpdash.store, r = s.runs.get(s.selectedRun);
                return r && r.id !== shown && r.lesson === lesson && r.full && ["finished", "failed", "stopped"].includes(r.state); }}""", arg=[shown, lesson], timeout=120_000)
            page.wait_for_function(f"() => {TERMINAL}")
            settle(page)
            page.keyboard.press("Escape")   # close the parameters popover, if it opened
            page.mouse.move(0, 0)
            page.evaluate("window.scrollTo(0, 0)")
            page.screenshot(path=str(DOCS / "lessons" / f"{lesson}.png"), full_page=True)
            if lesson in README:
                page.screenshot(path=str(DOCS / f"{lesson}.png"), full_page=True)
            print(lesson, page.text_content('[data-testid="run-state"]'))
        context.close()
        browser.close()


if __name__ == "__main__":
    shoot(sys.argv[1].rstrip("/"), sys.argv[2:])
