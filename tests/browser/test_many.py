"""Issue 14 part B, forty workers at a glance: a watched Pool(40) in headless Chromium at the
size of a 1366 × 768 laptop screen.

One real run for the module (40 forked workers, 400 short tasks: light on two busy cores); each
test checks one promise on it: the CPU heatmap past 12 processes, the workers as one group row
that opens and closes (tree and timeline), the pool panel's bars, nothing wider than the screen.
"""
from __future__ import annotations

import os
import re
import sys

import pytest

from mpdash.dashboard import Dashboard
from mpdash.runs import PROJECT_ROOT
from mpdash.state import Limits
from tests.browser.conftest import open_page
from tests.leaks import assert_none_left

pytestmark = pytest.mark.browser

WORKERS = 40
TASKS = 400
SCRIPT = os.path.join(PROJECT_ROOT, "tests", "programs", "pool40.py")
SCREEN = {"width": 1366, "height": 768}


@pytest.fixture(scope="module")
def many(browser):
    """(page, run id, pids of the workers): the watched 40-worker run, ended, on the page."""
    from werkzeug.serving import make_server
    import threading

    from mpdash.web import create_app
    dash = Dashboard(Limits())
    server = make_server("127.0.0.1", 0, create_app(dash, {"TESTING": True}), threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{server.server_port}"
    context, page, watch = open_page(browser, base, viewport=SCREEN)
    try:
        run = dash.engine.start_command([sys.executable, SCRIPT, str(WORKERS), str(TASKS), "2"])
        # The page follows the new run; it ends within a few seconds even on a loaded machine.
        page.wait_for_function("(id) => window.mpdash.store.selectedRun === id", arg=run.id, timeout=30_000)
        dash.engine.wait(run.id, timeout=90)
        page.wait_for_function("""(id) => { const r = window.mpdash.store.runs.get(id);
            return r && r.full && r.state === 'finished' && [...r.procs.values()].every(p => p.ended_at && p.end); }""",
                               arg=run.id, timeout=30_000)
        data = dash.hub.snapshot(run)
        workers = sorted(p["pid"] for p in data["processes"] if p["role"] == "worker")
        assert len(workers) == WORKERS, data["processes"]
        assert [p["kind"] for p in data["pools"]] == ["Pool"], data["pools"]   # the server's pool insights
        page.wait_for_selector("[data-testid=pools] [data-testid=pool]", timeout=15_000)
        yield page, run.id, workers, data
        watch.check()
    finally:
        context.close()
        server.shutdown()
        thread.join(timeout=5)
        dash.close()
        assert_none_left(os.getpid())


def test_past_12_processes_cpu_is_a_heatmap_with_the_busiest_few_as_lines(many):
    page, run_id, workers, data = many
    canvas = page.locator("[data-testid=chart-proc-heatmap]")
    assert canvas.is_visible()
    n = page.evaluate("(id) => window.mpdash.store.runs.get(id).procs.size", run_id)
    assert n > 12
    assert int(canvas.get_attribute("data-rows")) == n   # one row per process, none left out
    # The heatmap is painted: among its rows, the workers' busy stretches are not the idle colour.
    painted = page.evaluate("""() => { const c = document.querySelector('[data-testid=chart-proc-heatmap]');
        const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data; const seen = new Set();
        for (let i = 0; i < d.length; i += 4) if (d[i + 3]) seen.add(`${d[i]},${d[i + 1]},${d[i + 2]}`);
        return seen.size; }""")
    assert painted >= 3, "a heatmap of a busy pool shows more than one or two colours"
    ids = page.evaluate("() => window.mpdash.charts.cpu.ids")
    assert 1 <= len(ids) <= 5
    legend = page.locator("[data-chart=chart-proc-cpu] [data-testid=legend-item]")
    assert legend.count() == len(ids)
    # The lines kept are the busiest: none of the processes left out used more CPU on average.
    means = page.evaluate("""(id) => { const r = window.mpdash.store.runs.get(id), m = {};
        for (const f of r.frames) f.pid.forEach((p, i) => { (m[p] = m[p] || []).push(f.cpu[i]); });
        const out = {}; for (const [p, v] of Object.entries(m)) out[p] = v.reduce((a, b) => a + b, 0) / v.length; return out; }""", run_id)
    kept = min(means.get(i, 0) for i in ids)
    assert all(v <= kept + 1e-9 for p, v in means.items() if p not in ids)


@pytest.mark.parametrize("where", ["#proc-rows", "#timeline"])
def test_pool_workers_are_one_group_that_opens_and_closes(many, where):
    page, run_id, workers, data = many
    group = page.locator(f"{where} [data-testid=proc-group]")
    assert group.count() == 1
    assert int(group.get_attribute("data-count")) == WORKERS
    ends = group.get_attribute("data-ends")
    counted = sum(int(n) for n in re.findall(r"(\d+) [a-z]", ends))
    assert counted == WORKERS, ends
    # How they ended, from the run's own exit data: `with Pool()` terminates its workers.
    by_end = {}
    for p in data["processes"]:
        if p["role"] == "worker":
            by_end[p["end"]] = by_end.get(p["end"], 0) + 1
    for end, n in by_end.items():
        assert f"{n} {'exit' if end == 'exit' else end}" in ends, (ends, by_end)
    lane = "[data-testid=proc-row]" if where == "#proc-rows" else ".tl-lane[data-pid]"
    closed = page.locator(f"{where} {lane}").count()
    assert closed < 12   # the main and its helpers; no worker row
    group.locator("[data-testid=proc-group-toggle]").click()
    page.wait_for_function(f"(n) => document.querySelectorAll('{where} {lane}').length === n", arg=closed + WORKERS)
    shown = {int(x) for x in page.locator(f"{where} {lane}").evaluate_all("ns => ns.map(n => n.dataset.pid)")}
    assert set(workers) <= shown
    page.locator(f"{where} [data-testid=proc-group] [data-testid=proc-group-toggle]").click()
    page.wait_for_function(f"(n) => document.querySelectorAll('{where} {lane}').length === n", arg=closed)


def test_the_group_row_adds_up_its_workers_cpu(many):
    page, run_id, workers, data = many
    cpu = page.locator("#proc-rows [data-testid=proc-group] [data-col=cpu]").inner_text()
    value = float(cpu.replace("Σ", "").strip())
    cores = page.evaluate("() => window.mpdash.store.system.cores")
    # Forty workers share the machine's cores: their CPU added up never exceeds all of them.
    assert 0 < value <= 100 * cores + 5, cpu


def test_pool_panel_has_a_busy_idle_bar_per_worker(many):
    page, run_id, workers, data = many
    panel = page.locator("[data-testid=pools]")
    assert panel.is_visible()
    rows = panel.locator("[data-testid=pool-worker]")
    assert rows.count() == WORKERS
    info = rows.evaluate_all("""ns => ns.map(n => ({ pid: +n.dataset.pid, tasks: +n.dataset.tasks,
        busy: +n.dataset.busy, idle: +n.dataset.idle, w: n.querySelector('[data-testid=pool-busy]').getBoundingClientRect().width,
        bar: n.querySelector('.pool-bar').getBoundingClientRect().width }))""")
    assert sorted(i["pid"] for i in info) == workers
    assert sum(i["tasks"] for i in info) == TASKS
    # The bars are the server's numbers (the Run's `pools`), not the page's own guess.
    pool = data["pools"][0]
    server = {w["pid"]: w for w in pool["workers"]}
    for i in info:
        assert i["tasks"] == server[i["pid"]]["tasks"] and abs(i["busy"] - server[i["pid"]]["busy_s"]) < 1e-9
    assert page.locator("[data-testid=pool]").get_attribute("data-pool") == pool["id"]
    # Each bar's solid part is the worker's busy share of the longest worker's time.
    longest = max(i["busy"] + i["idle"] for i in info)
    for i in info:
        assert abs(i["w"] - i["bar"] * i["busy"] / longest) <= 1.5, i
    assert panel.locator("[data-testid=pool] .pool-slowest li").count() >= 1


def test_the_page_fits_a_1366_screen_and_the_top_bar_is_one_row(many, artifacts):
    page, run_id, workers, data = many
    assert page.viewport_size == SCREEN
    page.evaluate("() => window.scrollTo(0, 0)")
    page.screenshot(path=str(artifacts / "many-workers.png"), full_page=True)
    page.screenshot(path=str(artifacts / "many-workers-screen.png"))
    over = page.evaluate("() => document.documentElement.scrollWidth - document.documentElement.clientWidth")
    assert over <= 0, f"{over} px wider than the screen"
    # No panel's content is cut at its right edge either (a table or a timeline lane).
    clipped = page.evaluate("""() => [...document.querySelectorAll('.panel')].filter(p => p.offsetParent
        && p.scrollWidth > p.clientWidth + 1).map(p => [p.className, p.scrollWidth, p.clientWidth,
        [...p.querySelectorAll('*')].filter(c => c.getBoundingClientRect().right > p.getBoundingClientRect().right + 1)
            .map(c => `${c.tagName}.${c.className}: ${c.textContent.slice(0, 60)}`).slice(0, 3)])""")
    assert not clipped, clipped
    # One row: every item overlaps every other vertically (items differ in height, so their tops
    # differ too; a wrapped item starts below the bottom of the row above it).
    boxes = page.evaluate("""() => [...document.querySelector('.topbar').children].filter(c => c.offsetParent
        && c.getBoundingClientRect().width).map(c => { const r = c.getBoundingClientRect();
        return [Math.round(r.top), Math.round(r.bottom)]; })""")
    assert max(t for t, _ in boxes) < min(b for _, b in boxes), f"top bar wraps: {boxes}"
