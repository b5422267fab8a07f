"""Browser: 64 process series at 10 Hz in headless Chromium, frame time (setData → drawn).

The product page is being written in parallel, so this measures uPlot itself (the page's chart
library, vendored in static/vendor/uplot) in a small standalone page, benchmarks/browser/
uplot64.html: 64 series, a 60 s window at 10 Hz (600 points each), one new frame per 100 ms.
Served by a local HTTP server on a free port; Debian's /usr/bin/chromium through Playwright.
"""
from __future__ import annotations

import functools
import http.server
import os
import threading

from benchmarks._common import ROOT, median, p95, row

CHROMIUM = os.environ.get("MPDASH_CHROMIUM", "/usr/bin/chromium")


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


def measure(series: int, frames: int) -> list[float]:
    from playwright.sync_api import sync_playwright
    handler = functools.partial(_Quiet, directory=ROOT)
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True)
            try:
                page = browser.new_page(viewport={"width": 1280, "height": 600})
                page.goto(f"http://127.0.0.1:{server.server_port}/benchmarks/browser/"
                          f"uplot64.html?series={series}&frames={frames}")
                page.wait_for_function("window.result !== undefined", timeout=60_000)
                return page.evaluate("window.result.times")
            finally:
                browser.close()
    finally:
        server.shutdown()


def run(quick: bool = False) -> list[dict]:
    if not os.path.exists(CHROMIUM):
        return [row("browser: 64 series at 10 Hz, frame time p95", None, "ms", "≤ 16 ms", False,
                    f"no Chromium at {CHROMIUM}")]
    times = measure(64, 50 if quick else 150)[5:]   # the first frames warm the JIT
    return [row("browser: 64 series at 10 Hz, frame time p95 (uPlot, standalone page)",
                round(p95(times), 2), "ms", "≤ 16 ms", p95(times) <= 16,
                f"median {median(times):.2f} ms, max {max(times):.1f} ms, {len(times)} frames, "
                f"600 points per series, headless Chromium")]


if __name__ == "__main__":
    for r in run():
        print(r)
