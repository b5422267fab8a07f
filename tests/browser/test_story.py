"""Issue 19, one story on every panel: real runs in headless Chromium, one test per promise.

The run on screen is the lesson on screen; every process is visible and named (legends,
highlight, steps, short lives, colours, badges); the texts and panels say what the run did
(pool exits, tasks, queues, cores, state words); after exit the tree keeps what each process did.
"""
from __future__ import annotations

import math
import re
import sys

import pytest

from tests.browser.conftest import pick, rows, settle, start, wait_state

pytestmark = pytest.mark.browser


def run_to_end(page, lesson, timeout=60_000, **params):
    pick(page, lesson)
    shown = page.evaluate("() => window.mpdash.store.selectedRun")   # the lesson's previous run
    start(page, lesson, **params)
    page.wait_for_function("""([shown, lesson]) => { const s = window.mpdash.store, r = s.runs.get(s.selectedRun);
        return r && r.id !== shown && r.lesson === lesson && r.full; }""", arg=[shown, lesson])
    page.wait_for_function("() => document.querySelector('[data-testid=run-head]').dataset.runId === window.mpdash.store.selectedRun")
    state = wait_state(page, timeout=timeout)
    # The last frames and exit codes reach the page a moment after the state word.
    page.wait_for_function("""() => [...document.querySelectorAll('[data-testid=proc-row]')]
        .every(r => r.dataset.state === 'exited' && r.dataset.end)""", timeout=15_000)
    return state


def shown_run(page):
    return page.evaluate("() => window.mpdash.store.selectedRun")


def frames_of(page):
    """{pid: [(t - t0, cpu, rss KiB, status)]} of the shown run, as the page holds them."""
    return page.evaluate("""() => { const s = window.mpdash.store; const r = s.runs.get(s.selectedRun);
        const out = {}; for (const f of r.frames) f.pid.forEach((pid, i) => {
            (out[pid] = out[pid] || []).push([f.t - r.started_at, f.cpu[i], f.rss[i], f.status[i]]); });
        return out; }""")


def ink_at(page, which, points, colours=None, tol=48):
    """For each (x, y) in data units of chart ``which`` ('cpu', 'mem', 'cores'): is a pixel
    within 2 px drawn (opaque, and close to one of ``colours`` if given)?"""
    return page.evaluate(
        """([which, points, colours, tol]) => {
            const c = window.mpdash.charts[which]; const u = c.plot;
            const ctx = u.ctx; const hex = (h) => [1, 3, 5].map((k) => parseInt(h.slice(k, k + 2), 16));
            const want = (colours || []).map(hex);
            return points.map(([x, y]) => {
                const px = Math.round(u.valToPos(x, 'x', true)), py = Math.round(u.valToPos(y, 'y', true));
                const d = ctx.getImageData(px - 2, py - 2, 5, 5).data;
                for (let i = 0; i < d.length; i += 4) {
                    if (d[i + 3] < 150) continue;
                    if (!want.length) return true;
                    if (want.some(([r, g, b]) => Math.abs(d[i] - r) < tol && Math.abs(d[i + 1] - g) < tol && Math.abs(d[i + 2] - b) < tol)) return true;
                }
                return false;
            });
        }""", [which, points, colours, tol])


def colour_of_pid(page, pid):
    return page.evaluate("""(pid) => { const s = window.mpdash.store; const r = s.runs.get(s.selectedRun);
        const p = r.procs.get(pid); return getComputedStyle(document.querySelector(
        `#proc-rows [data-testid=proc-badge][data-pid="${pid}"]`)).backgroundColor; }""", pid)


def rgb_hex(css):
    r, g, b = (int(v) for v in re.findall(r"\d+", css)[:3])
    return f"#{r:02X}{g:02X}{b:02X}"


# ---- the run on screen is the lesson on screen ----------------------------------------------

def test_a_lesson_shows_its_own_latest_run_or_says_it_has_none(page):
    run_to_end(page, "queue")
    queue_run = shown_run(page)
    assert page.get_attribute('[data-testid="run-head"]', "data-lesson") == "queue"
    assert rows(page)
    # Another lesson with no run yet: no trace of the queue run next to its code.
    pick(page, "threads-vs-processes")
    page.wait_for_selector('[data-testid="run-empty"]')
    assert "no run" in page.text_content('[data-testid="run-empty"]').lower()
    assert page.locator('[data-testid="proc-row"]').count() == 0
    assert page.locator('[data-testid="legend-item"]').count() == 0
    assert page.text_content('[data-testid="run-state"]').strip() == "idle"
    assert page.locator('[data-testid^="finding-"]').count() == 0
    # Back: its latest run comes back with it.
    pick(page, "queue")
    page.wait_for_function(f"() => document.querySelector('[data-testid=run-head]').dataset.runId === '{queue_run}'")
    assert rows(page)
    # The §11 summary has no run either.
    pick_summary = page.click('[data-testid="lesson-summary"]')
    page.wait_for_selector('[data-testid="run-empty"]')
    assert page.locator('[data-testid="proc-row"]').count() == 0, pick_summary
    # A run picked from the history selects its lesson: header, code and run agree.
    run_to_end(page, "daemon", main_seconds=0.2, steps=2, step_seconds=0.2)
    page.click(f'[data-testid="run-item"][data-run-id="{queue_run}"]')
    page.wait_for_selector('#code[data-lesson="queue"]')
    assert page.get_attribute('[data-testid="lesson-queue"]', "aria-current") == "true"
    assert page.get_attribute('[data-testid="run-head"]', "data-run-id") == queue_run
    head = page.text_content('[data-testid="run-head"]')
    assert "Queue" in head and "producers=" in head, head   # the run's title and parameters


# ---- every process visible and named --------------------------------------------------------

def test_every_chart_has_a_legend_whose_highlight_reaches_every_panel(page):
    """Daemon: its two children draw the same flat lines; the legend tells them apart."""
    run_to_end(page, "daemon", main_seconds=0.3, steps=3, step_seconds=0.2)
    pids = {int(r.get_attribute("data-pid")) for r in page.locator('[data-testid="proc-row"]').all()}
    for chart in ("chart-proc-cpu", "chart-proc-mem"):
        items = page.locator(f'[data-testid="legend"][data-chart="{chart}"] [data-testid="legend-item"]')
        assert {int(i.get_attribute("data-pid")) for i in items.all()} == pids
    daemon = int(page.get_attribute('[data-testid="proc-row"][data-role="worker"] >> nth=0', "data-pid"))
    item = page.locator(f'[data-testid="legend"][data-chart="chart-proc-cpu"] [data-testid="legend-item"][data-pid="{daemon}"]')
    item.hover()
    page.wait_for_selector(f'#proc-rows tr.hl[data-pid="{daemon}"]')
    assert page.locator(f'#timeline .tl-lane.hl[data-pid="{daemon}"]').count() == 1
    assert page.locator(f'#output .line.hl[data-pid="{daemon}"]').count() >= 1
    # The others step back (after a 150 ms fade).
    page.wait_for_function("""(pid) => [...document.querySelectorAll('#proc-rows tr[data-pid]')]
        .filter((r) => r.dataset.pid !== String(pid)).every((r) => Number(getComputedStyle(r).opacity) < 0.6)""",
                           arg=daemon, timeout=3_000)
    focused = page.evaluate("() => window.mpdash.charts.cpu")
    assert focused["ids"][focused["focused"] - 1] == str(daemon)
    # A click keeps it when the pointer leaves; a second click lets it go.
    item.click()
    page.mouse.move(5, 5)
    settle(page)   # the pointer left: a highlight that would drop has dropped by now
    assert page.locator(f'#proc-rows tr.hl[data-pid="{daemon}"]').count() == 1
    assert item.get_attribute("aria-pressed") == "true"
    item.click()
    page.mouse.move(5, 5)
    page.wait_for_function("() => !document.body.classList.contains('highlighting')")
    assert page.evaluate("() => window.mpdash.charts.cpu.focused") is None


def test_values_are_drawn_as_measured_steps_never_slopes(page):
    """RSS holds from one reading to the next: between two samples the line is at the first
    value, not halfway to the second (a straight line would draw a ramp nobody measured)."""
    run_to_end(page, "pool-map", spin=0.1, items=6)
    main = int(page.get_attribute('[data-testid="proc-row"][data-role="main"]', "data-pid"))
    samples = [s for s in frames_of(page)[str(main)] if s[3] != "Z" and s[2] > 0]
    pairs = [(a, b) for a, b in zip(samples, samples[1:]) if abs(b[2] - a[2]) >= 2048 and b[0] - a[0] > 0.03]
    assert pairs, f"the main's RSS never changed by 2 MiB between samples: {samples}"
    colour = rgb_hex(colour_of_pid(page, main))
    for a, b in pairs[:3]:
        mid = (a[0] + b[0]) / 2
        held, ramp = ink_at(page, "mem", [[mid, a[2] / 1024], [mid, (a[2] + b[2]) / 2048]], [colour])
        assert held and not ramp, (a, b)
    # CPU % is the average since the previous sample: flat over that interval, at its value.
    cpu = [s for s in frames_of(page)[str(main)] if s[3] != "Z"]
    # (Levels off the 0 % line, where the workers' own lines lie on top of the main's.)
    jumps = [(a, b) for a, b in zip(cpu, cpu[1:])
             if abs(b[1] - a[1]) >= 25 and min(a[1], b[1]) >= 8 and b[0] - a[0] > 0.04]
    for a, b in jumps[:3]:
        mid = (a[0] + b[0]) / 2
        level, ramp = ink_at(page, "cpu", [[mid, b[1]], [mid, (a[1] + b[1]) / 2]], [colour])
        assert level and not ramp, (a, b)


def test_a_process_shorter_than_a_sample_period_still_gets_a_mark(page):
    """Pool workers with nothing to compute live a few tens of ms, less than the 100 ms period:
    each sample they appear in is drawn (a dot when it is their only one)."""
    run_to_end(page, "pool-map", workers=3, items=3)
    frames = frames_of(page)
    workers = [int(r.get_attribute("data-pid")) for r in page.locator('[data-testid="proc-row"][data-role="worker"]').all()]
    colours = [rgb_hex(colour_of_pid(page, pid)) for pid in workers]
    sampled = [pid for pid in workers if str(pid) in frames]
    legend = page.locator('[data-testid="legend"][data-chart="chart-proc-mem"]')
    for pid in workers:
        text = legend.locator(f'[data-pid="{pid}"]').text_content()
        assert ("not sampled" in text) == (pid not in sampled), text
    # One never sampled (it lived between two samples: a loaded machine) still has a mark: a
    # hollow bar of its colour along the bottom of both charts, over its lifetime.
    for pid, colour in zip(workers, colours):
        if pid in sampled:
            continue
        for which in ("cpu", "mem"):
            assert page.evaluate("""([which, pid, colour]) => {
                const s = window.mpdash.store, r = s.runs.get(s.selectedRun), p = r.procs.get(pid);
                const u = window.mpdash.charts[which].plot, dpr = devicePixelRatio;
                const x = Math.round(u.valToPos(p.started_at - r.started_at, 'x', true));
                const y = Math.round(u.bbox.top + u.bbox.height - 9 * dpr);
                const want = [1, 3, 5].map((k) => parseInt(colour.slice(k, k + 2), 16));
                const d = u.ctx.getImageData(x - 3, y - 3, 14 * dpr, 10 * dpr).data;
                for (let i = 0; i < d.length; i += 4)
                    if (d[i + 3] > 150 && want.every((v, k) => Math.abs(d[i + k] - v) < 48)) return true;
                return false; }""", [which, pid, colour]), (which, pid)
    points = [[t, rss / 1024] for pid in sampled for t, _, rss, status in frames[str(pid)] if rss]
    if not points:
        return   # none sampled: the lifetime bars above are all there is to see
    assert all(ink_at(page, "mem", points, colours)), points
    cpu = [[t, c] for pid in sampled for t, c, _, _ in frames[str(pid)]]
    assert all(ink_at(page, "cpu", cpu, colours)), cpu


def test_at_least_twelve_colours_the_mains_never_reused_and_badges_readable(page):
    got = page.evaluate("""async () => { const u = await import('/static/js/util.js');
        return [...Array(30).keys()].map((i) => u.colourOf(i).colour); }""")
    assert len(set(got[1:14])) == 13 and got[0] not in got[1:]
    # race-condition: 8 workers + the main; the 9th process and on kept a dashed outline before.
    run_to_end(page, "race-condition", processes=4, times=20_000)
    badges = page.locator('#proc-rows [data-testid="proc-badge"]')
    assert badges.count() == 9
    report = page.evaluate("""() => [...document.querySelectorAll('[data-testid=proc-badge]')].map((b) => {
        const s = getComputedStyle(b);
        const lum = (c) => { const [r, g, b2] = c.match(/\\d+/g).map(Number).map((v) => v / 255)
            .map((v) => (v <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4)); return 0.2126 * r + 0.7152 * g + 0.0722 * b2; };
        const [a, z] = [lum(s.backgroundColor), lum(s.color)].sort((x, y) => y - x);
        return {pid: b.dataset.pid, bg: s.backgroundColor, outline: s.outlineStyle, contrast: (a + 0.05) / (z + 0.05),
                readable: b.textContent === b.dataset.pid}; })""")
    assert all(r["pid"] and r["readable"] for r in report)
    assert all(r["outline"] == "none" for r in report), report
    assert min(r["contrast"] for r in report) >= 4.5, report
    main = page.get_attribute('[data-testid="proc-row"][data-role="main"]', "data-pid")
    main_bg = {r["bg"] for r in report if r["pid"] == main}
    assert not main_bg & {r["bg"] for r in report if r["pid"] != main}
    tree = {r["bg"] for r in report[:9]}
    assert len(tree) == 9, "9 processes, 9 colours"
    # The text says 4 processes: each of the 8 workers says which phase it ran in.
    phases = [t.strip() for t in page.locator('[data-testid="proc-phase"]').all_text_contents()]
    assert sorted(phases) == ["locked"] * 4 + ["unlocked"] * 4


# ---- claims that match the picture -----------------------------------------------------------

def test_pool_exit_sentence_says_how_this_runs_workers_ended(page):
    run_to_end(page, "pool-map", workers=3, items=5)
    text = page.text_content('[data-testid="finding-workers_end"]')
    codes = [int(r.get_attribute("data-exitcode")) for r in page.locator('[data-testid="proc-row"][data-role="worker"]').all()]
    exited, termed = codes.count(0), codes.count(-15)
    if exited:
        assert f"{exited} of 3 exited" in text, (text, codes)
    if termed:
        assert f"{termed} of 3 {'was' if termed == 1 else 'were'} ended by terminate() with SIGTERM" in text, (text, codes)
    assert "the workers are ended with SIGTERM" not in page.text_content('[data-testid="explanation"]')


def test_pool_tasks_are_labelled_blocks_and_cross_visible_queues(page):
    run_to_end(page, "pool-map", workers=3, items=6, spin=0.05, chunksize=1)
    blocks = page.locator('[data-testid="timeline-task"]')
    items, tasks = [], 0
    for b in blocks.all():
        box = b.bounding_box()
        assert box["width"] >= 20, "a task is a block one can see and count"
        tasks += int(b.get_attribute("data-tasks"))
        items += [int(x) for x in re.findall(r"-?\d+", b.get_attribute("data-items"))]
        assert b.text_content().strip() or int(b.get_attribute("data-tasks")) > 1
    assert tasks == 6 and sorted(items) == [1, 2, 3, 4, 5, 6]
    # Each block sits on the lane of the worker that ran it.
    lanes = page.locator('#timeline .tl-lane[data-pid]:has([data-testid="timeline-task"])')
    assert all(lane.get_attribute("data-pid") != page.get_attribute('[data-testid="proc-row"][data-role="main"]', "data-pid")
               for lane in lanes.all())
    tasks_q = page.locator('[data-testid="channel"][data-channel="Pool-1 tasks"]')
    results_q = page.locator('[data-testid="channel"][data-channel="Pool-1 results"]')
    assert tasks_q.get_attribute("data-count") == "6" and results_q.get_attribute("data-count") == "6"
    # The owner's side of both queues: every task put, every result collected, and the depth
    # in between (3 workers, 6 tasks put at once: some waited).
    assert tasks_q.get_attribute("data-put") == "6" and results_q.get_attribute("data-got") == "6"
    assert int(tasks_q.get_attribute("data-peak")) >= 1
    assert "depth 0" in tasks_q.text_content() and "depth 0" in results_q.text_content()
    rows_ = page.locator('[data-testid="message-row"][data-kind="task"]')
    assert rows_.count() == 12
    assert all(re.fullmatch(r"\d+\.\d ms", r.locator("td").nth(5).text_content()) for r in rows_.all())


def test_a_busy_pools_queues_are_counted_past_the_rate_budget(page):
    run_to_end(page, "pool-map", workers=2, items=3000, chunksize=1)
    tasks_q = page.locator('[data-testid="channel"][data-channel="Pool-1 tasks"]')
    assert int(tasks_q.get_attribute("data-count")) == 3000
    assert "summarised" in tasks_q.text_content()
    results_q = page.locator('[data-testid="channel"][data-channel="Pool-1 results"]')
    assert int(results_q.get_attribute("data-count")) == 3000
    assert int(tasks_q.get_attribute("data-put")) == 3000 and int(results_q.get_attribute("data-got")) == 3000


def test_cores_chart_separates_this_run_from_the_rest_of_the_machine(page):
    run_to_end(page, "pool-map", workers=2, items=4, spin=0.4)
    data = page.evaluate("""() => { const c = window.mpdash.charts.cores;
        const s = window.mpdash.store, r = s.runs.get(s.selectedRun);
        return {ids: c.ids, data: c.plot.data.map((d) => Array.from(d)),
                own: r.frames.map((f) => [f.cpu.reduce((a, b) => a + b, 0), f.cores])}; }""")
    machine = data["data"][1 + data["ids"].index("machine")]
    run = data["data"][1 + data["ids"].index("run")]
    # Two workers spinning: a share one can see (how much depends on what else this machine
    # runs, so only "some"), and it is exactly the run's processes' CPU over the cores.
    assert max(run) > 1, run
    assert len(run) == len(data["own"])
    for r, m, (own, cores) in zip(run, machine, data["own"]):
        mean = sum(cores) / len(cores)
        assert abs(m - min(100, mean)) < 1e-6
        assert abs(r - min(100, own / len(cores), mean)) < 1e-6, (r, own, cores)
        assert 0 <= r <= m + 1e-6 <= 100 + 1e-6
    legend = page.text_content('[data-testid="cores-legend"]')
    assert "this run" in legend and "whole machine" in legend
    split = page.locator('[data-testid="cores-split"]')
    assert float(split.get_attribute("data-run")) + float(split.get_attribute("data-other")) <= 100.05


def test_a_main_waiting_while_its_threads_run_is_running(page):
    """threads-vs-processes: in its thread phase the main's own thread waits in join() (stat
    letter S) while its worker threads compute."""
    start(page, "threads-vs-processes", workers=2, work=40_000_000)
    main_row = '[data-testid="proc-row"][data-role="main"]'
    page.wait_for_selector(main_row)
    seen = page.wait_for_function(f"""() => {{ const r = document.querySelector('{main_row}');
        const t = r && r.querySelector('[data-col=state]').textContent;
        return t && /^running \\(3 threads\\)$/.test(t) ? t : null; }}""", timeout=30_000)
    assert seen.json_value() == "running (3 threads)"
    wait_state(page, timeout=90_000)


# ---- after exit, units, ticks, before → after ------------------------------------------------

def test_after_exit_the_tree_keeps_peaks_and_lifetimes_and_clips_nothing(page):
    page.set_viewport_size({"width": 1366, "height": 768})
    run_to_end(page, "daemon", main_seconds=0.3, steps=3, step_seconds=0.2)
    for row in page.locator('[data-testid="proc-row"]').all():
        cells = {c.get_attribute("data-col"): c.text_content().strip() for c in row.locator("td").all()}
        assert cells["cpu"].startswith("▲ ") and cells["rss"].startswith("▲ "), cells
        assert re.fullmatch(r"▲ \d+(\.\d+)? (KiB|MiB|GiB)", cells["rss"]), cells
        assert re.fullmatch(r"\d+\.\d+ s", cells["lived"]), cells
        assert cells["end"], cells
    clipped = page.evaluate("""() => [...document.querySelectorAll('#proc-rows td, .tl-endcol, .tl-endcol .end-badge')]
        .filter((c) => c.offsetParent && c.scrollWidth > c.clientWidth + 1).map((c) => c.textContent)""")
    assert not clipped
    wrap = page.evaluate("() => { const w = document.querySelector('.table-wrap'); return [w.scrollWidth, w.clientWidth]; }")
    assert wrap[0] <= wrap[1] + 1, wrap
    assert "terminated SIGTERM" in page.text_content('#proc-rows tr[data-end="terminated"]')


def test_one_unit_family_and_round_ticks(page):
    run_to_end(page, "pool-map", spin=0.1, items=6)
    text = page.text_content("body")
    assert not re.search(r"\d\s?(MB|kB|KB|GB)\b", text)
    for which in ("cores", "cpu", "mem"):
        splits = page.evaluate(f"() => window.mpdash.charts.{which}.plot.axes[0]._splits")
        labels = page.evaluate(f"() => window.mpdash.charts.{which}.plot.axes[0]._values")
        steps = {round(b - a, 9) for a, b in zip(splits, splits[1:])}
        assert len(steps) == 1, splits
        step = steps.pop()
        mantissa = step / 10 ** math.floor(math.log10(step))
        assert round(mantissa, 6) in (1, 2, 5), (which, step)
        for s, label in zip(splits, labels):
            assert abs(float(label.split()[0]) - s) < 1e-9, (s, label)   # 0.25 never printed "0.3"
    ticks = [float(t.split()[0]) for t in page.locator("#timeline .tick").all_text_contents()]
    steps = {round(b - a, 9) for a, b in zip(ticks, ticks[1:])}
    assert len(steps) == 1 and round(steps.pop() / 10 ** math.floor(math.log10(ticks[1] - ticks[0])), 6) in (1, 2, 5)


def test_shared_memory_shows_before_and_after(page):
    run_to_end(page, "shared-memory")
    text = page.text_content('[data-testid="finding-before_after"]')
    assert "num 5 → 15" in text and "[1, 2, 3] → [2, 3, 4]" in text, text
    # The messages panel too: each cell as created (traced at creation) → as the child left it.
    cells = page.evaluate("""() => [...document.querySelectorAll('[data-testid=shared-cells]')].map((g) =>
        [g.dataset.channel, [...g.querySelectorAll('[data-testid=shared-cell]')].map((c) => [c.dataset.before, c.dataset.value])])""")
    assert dict(cells) == {"Value-1": [["5", "15"]], "Array-1": [["1", "2"], ["2", "3"], ["3", "4"]]}, cells
    assert page.locator('[data-testid="shared-before"]').all_text_contents() == ["5 →", "1 →", "2 →", "3 →"]


def test_a_watched_program_picked_from_the_history_shows_no_lesson(page, dashboard):
    run = dashboard.engine.start_command([sys.executable, "-c", "print('hello from mine')"])
    dashboard.engine.wait(run.id, timeout=30)
    item = page.locator(f'[data-testid="run-item"][data-run-id="{run.id}"]')
    item.wait_for()
    pick(page, "queue")
    item.click()
    page.wait_for_function(f"() => document.querySelector('[data-testid=run-head]').dataset.runId === '{run.id}'")
    assert page.locator('[data-testid^="lesson-"][aria-current="true"]').count() == 0
    assert "print('hello from mine')" in page.text_content("#lesson-title")
    assert page.get_attribute('[data-testid="code"]', "data-lesson") == ""
    assert "watched program" in page.text_content('[data-testid="run-head"]')
    page.wait_for_selector('#output .line:has-text("hello from mine")')
