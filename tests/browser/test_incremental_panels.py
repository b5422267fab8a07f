"""The messages and output panels draw incrementally (issue 14 part B): what they show must be
exactly what a from-scratch render of the same run shows, whichever way the events came in
(a live viewer frame by frame, a late joiner's catch-up, a reload, a replay), and the output
keeps its auto-scroll while no longer reading the layout on every frame.
"""
from __future__ import annotations

import pytest

from tests.browser.conftest import open_page, start, wait_all_exited, wait_state

pytestmark = pytest.mark.browser

# The panel as markup, minus what legitimately depends on the draw history rather than on the
# run: the depth chart's canvas (uPlot's), a cell's one-shot `flash`, and (across pages) the
# badges' colours, which the store gives in the order it learnt of the processes.
SNAP = """(styles) => { const box = document.getElementById('messages').cloneNode(true);
    box.querySelectorAll('[data-testid=chart-queue-depth]').forEach((c) => c.replaceChildren());
    box.querySelectorAll('.flash').forEach((c) => c.classList.remove('flash'));
    if (!styles) box.querySelectorAll('[style]').forEach((c) => c.removeAttribute('style'));
    box.querySelectorAll('.hl').forEach((c) => c.classList.remove('hl'));
    return box.innerHTML; }"""

# A synthetic run with every kind of traffic the panel folds: queue and pipe pairs (some still
# in flight), a tapped pool (task_put → task_start → task_end → result_get) and an untapped one
# whose owner is found through a `proc` message that comes after the worker's first events,
# traffic summaries, shared cells and terminate() signals. Each event "happens" at t and
# reaches the page a little later (its process's connection), so some recvs arrive before
# their sends, across batches too; a tenth of the events share their time with another.
FEED = """async ({ seed, batches, crossing }) => {
    const S = await import('/static/js/store.js');
    const M = await import('/static/js/messages.js');
    const st = S.store;
    let x = seed;
    const rnd = () => { x = (x * 1103515245 + 12345) % 2147483648; return x / 2147483648; };
    const pick = (a) => a[Math.floor(rnd() * a.length)];
    const draw = () => new Promise((r) => requestAnimationFrame(() => requestAnimationFrame(r)));
    const snap = """ + SNAP + """;
    const t0 = Date.now() / 1000 + st.skew - 30, main = 700100, workers = [700101, 700102, 700103, 700104];
    const late = 700105;   // its proc message comes after its first task events
    const procs = [main, ...workers, late].map((pid, i) => ({ pid, ppid: i ? main : 1, name: i ? `Process-${i}` : 'MainProcess',
        role: i ? 'worker' : 'main', daemon: false, orphan: false, start_method: 'fork', exitcode: null, end: null, kind: 'start', t: t0 }));
    const happened = [];
    let t = t0 + 0.05;
    const at = (d) => t + d;
    for (let i = 0; i < 420; i++) {
        t += rnd() < 0.1 ? 0 : rnd() * 0.02;
        const w = pick(workers), r = rnd();
        if (r < 0.22) {
            happened.push({ kind: 'queue_put', pid: w, channel: 'Queue-1', msg: i, t, size: 20, detail: `item ${i}` });
            if (rnd() < 0.9) happened.push({ kind: 'queue_get', pid: main, channel: 'Queue-1', msg: i, t: at(rnd() * 0.05), size: 20, detail: `item ${i}` });
        } else if (r < 0.36) {
            happened.push({ kind: 'pipe_send', pid: main, channel: 'Pipe-1', msg: i, t, size: 8 + i % 5, detail: `ping ${i}` });
            if (rnd() < 0.9) happened.push({ kind: 'pipe_recv', pid: w, channel: 'Pipe-1', msg: i, t: at(rnd() * 0.02), size: 8 + i % 5, detail: `ping ${i}` });
        } else if (r < 0.56) {
            const d = rnd() * 0.03;
            happened.push({ kind: 'task_put', pid: main, channel: 'Pool-1', msg: i, t, detail: `f(${i})` });
            happened.push({ kind: 'task_start', pid: w, channel: 'Pool-1', msg: i, t: at(d), detail: `f(${i})`, items: 1 + i % 3 });
            happened.push({ kind: 'task_end', pid: w, channel: 'Pool-1', msg: i, t: at(d + 0.01), detail: `f(${i})`, ok: i % 17 !== 0 });
            if (rnd() < 0.9) happened.push({ kind: 'result_get', pid: main, channel: 'Pool-1', msg: i, t: at(d + 0.02), detail: `f(${i})` });
        } else if (r < 0.68) {
            const p = rnd() < 0.5 ? late : w;
            happened.push({ kind: 'task_start', pid: p, channel: 'Pool-2', msg: i, t, detail: `g(${i})` });
            if (rnd() < 0.9) happened.push({ kind: 'task_end', pid: p, channel: 'Pool-2', msg: i, t: at(0.004), detail: `g(${i})` });
        } else if (r < 0.74) {
            happened.push(pick([{ kind: 'traffic', pid: w, channel: 'Queue-2', puts: 5, gets: 3, size: 100, depth: 2 + i % 3 },
                { kind: 'traffic', pid: w, channel: 'Pipe-2', sends: 4, recvs: 4, size: 64 },
                { kind: 'traffic', pid: w, channel: 'Pool-2', tasks_started: 3, tasks_ended: 3 },
                { kind: 'traffic', pid: main, channel: 'Pool-1', tasks_put: 2, results_got: 1 }]));
            happened.at(-1).t = t;
        } else if (r < 0.94) {
            if (i < 30) happened.push({ kind: 'shared_init', pid: main, channel: 'Array-1', value: [0, 0, 0, 0], t });
            happened.push({ kind: 'shared_write', pid: w, channel: pick(['Array-1', 'Value-1']), index: i % 4, value: i, t, seq: i });
        } else {
            happened.push({ kind: 'terminate', pid: main, channel: String(w), detail: 'SIGTERM', t });
        }
    }
    // Arrival: each event a few ms after it happened, some up to 60 ms (a busy connection).
    const arrival = happened.map((e) => ({ e, at: e.t + (crossing && rnd() < 0.15 ? rnd() * 0.06 : 0) }))
        .sort((a, b) => a.at - b.at).map((a) => a.e);
    let seq = 10;
    const feedProcs = (id, which) => { for (const p of procs.filter(which)) S.applyLive('proc', { ...p, run: id, seq: ++seq }); };
    const newRun = (id, state) => {
        S.applySummary({ id, kind: 'watch', title: 'python traffic.py', command: ['python', 'traffic.py'], state,
            started_at: t0, ended_at: state === 'running' ? null : t + 1, seq: 1, process_count: 6 });
        const rec = st.runs.get(id); rec.full = true;
        return rec;
    };
    const show = async (id) => { st.selectedRun = id; st.selectedLesson = null; st.follow = false; S.invalidate(); await draw(); };
    // From scratch: a run that gets the same events at once, as a late joiner or a reload does.
    let scratchN = 0;
    const scratch = async (events, state, procsToo = () => true) => {
        const id = `scratch-${++scratchN}`;
        newRun(id, state);
        feedProcs(id, procsToo);
        for (const e of events) S.applyLive('event', { ...e, run: id, seq: ++seq });
        await show(id);
        return snap(false);
    };
    const mismatches = [];
    const compare = async (what, incremental, events, state, procsToo) => {
        const s = await scratch(events, state, procsToo);
        if (s !== incremental) mismatches.push({ what, incremental, scratch: s });
    };
    const id = 'incremental';
    const rec = newRun(id, 'running');
    feedProcs(id, (p) => p.pid !== late);
    await show(id);
    const stats0 = { ...M.foldStats };
    let k = 0, checks = 0;
    const given = [];
    for (let b = 0; b < batches && k < arrival.length; b++) {
        const n = b === batches - 1 ? arrival.length - k : 1 + Math.floor(rnd() * (2 * arrival.length / batches));
        for (const e of arrival.slice(k, k + n)) {
            const m = { ...e, run: id, seq: ++seq };
            given.push(m);
            S.applyLive('event', m);
        }
        k += n;
        if (b === Math.floor(batches / 3)) feedProcs(id, (p) => p.pid === late);
        S.invalidate();
        await draw();
        if (b % 12 === 11) {
            // Compared with a from-scratch render of the same events, then shown again: it is
            // folded anew once (another run was shown), then incrementally again.
            const mine = snap(false);
            await compare(`after batch ${b}`, mine, given, 'running', (p) => p.pid !== late || b >= Math.floor(batches / 3));
            await show(id);
            checks += 1;
        }
    }
    await compare('live, at the end', snap(false), given, 'running');
    await show(id);
    const stats1 = { ...M.foldStats };
    // Replay: scrub into the run, forward, then back to the end.
    S.applySummary({ id, state: 'finished', ended_at: t + 1, seq: 2 });
    await show(id);
    const finished = snap(false);
    const rows = document.querySelectorAll('#messages [data-testid=message-row]').length;
    await compare('finished', finished, given, 'finished');
    await show(id);
    for (const frac of [0.4, 0.7, 0.71, 0.3]) {
        st.scrub = t0 + (t - t0) * frac;
        await show(id);
        const mine = snap(false);
        st.scrub = null;
        await compare(`replay at ${frac}`, mine, given.filter((e) => e.t <= t0 + (t - t0) * frac), 'finished');
        st.scrub = t0 + (t - t0) * frac;
        await show(id);
    }
    st.scrub = null;
    await show(id);
    const back = snap(false);
    return { mismatches, checks, rows, events: given.length, back: back === finished,
             appended: stats1.appended - stats0.appended, rebuilds: stats1.rebuilds - stats0.rebuilds, batches };
}"""


@pytest.mark.parametrize("crossing", [True, False], ids=["reports-crossing", "in-order"])
def test_the_messages_panel_folded_as_events_arrive_equals_a_full_rebuild(page, crossing):
    got = page.evaluate(FEED, {"seed": 12345, "batches": 60, "crossing": crossing})
    assert got["mismatches"] == [], got["mismatches"][0]
    assert got["checks"] >= 3 and got["rows"] == 14 and got["back"], got
    # The incremental path was taken: events were folded in as they came. The panel is folded
    # anew when another run was shown (twice per comparison: the scratch run, then this one
    # again, and once more for the last comparison) and, with crossing reports, when an event happened before
    # one already folded.
    assert got["appended"] > 0, got
    if crossing:
        assert got["rebuilds"] < got["batches"], got
    else:
        assert got["rebuilds"] == 2 * got["checks"] + 2, got


def test_the_messages_panel_matches_for_a_live_viewer_a_late_joiner_and_a_reload(browser, live_server, page):
    start(page, "pool-map", spin=0.4, items=8)
    page.wait_for_selector('[data-testid="proc-row"][data-role="worker"]')
    ctx2, late, watch2 = open_page(browser, live_server)   # joins mid-run, catches up with ?since=
    try:
        assert wait_state(page) == "finished" and wait_state(late) == "finished"
        wait_all_exited(page, 4)
        wait_all_exited(late, 4)
        run = page.evaluate("() => window.mpdash.store.selectedRun")
        ctx3, fresh, watch3 = open_page(browser, live_server)   # the finished run, from scratch
        try:
            fresh.evaluate("async (id) => (await import('/static/js/store.js')).selectRun(id, { follow: false })", run)
            fresh.wait_for_function("(id) => window.mpdash.store.runs.get(id)?.full", arg=run)
            for p in (page, late, fresh):
                p.wait_for_function("() => document.querySelectorAll('#messages [data-testid=message-row]').length === 14")
            page.wait_for_timeout(300)   # the last draws
            snaps = [p.evaluate(SNAP, False) for p in (page, late, fresh)]
            assert snaps[0] == snaps[2] and snaps[1] == snaps[2]
            counts = fresh.eval_on_selector_all('#messages [data-testid=channel]', "els => els.map(e => [e.dataset.channel, e.dataset.count])")
            assert counts == [["Pool-1 tasks", "8"], ["Pool-1 results", "8"]]
            watch3.check()
        finally:
            ctx3.close()
        watch2.check()
    finally:
        ctx2.close()


SCROLL = """async ({ lines, scrollUp }) => {
    const S = await import('/static/js/store.js');
    const st = S.store, id = 'printing', t0 = Date.now() / 1000 + st.skew - 5;
    const draw = () => new Promise((r) => requestAnimationFrame(() => requestAnimationFrame(r)));
    S.applySummary({ id, kind: 'watch', title: 'python p.py', command: ['python', 'p.py'], state: 'running',
        started_at: t0, ended_at: null, seq: 1, process_count: 1 });
    st.runs.get(id).full = true;
    S.applyLive('proc', { seq: 2, run: id, kind: 'start', pid: 4242, ppid: 1, name: 'MainProcess', role: 'main', daemon: false,
        orphan: false, start_method: 'fork', t: t0, exitcode: null, end: null });
    st.selectedRun = id; st.follow = false;
    let seq = 10;
    const print = async (n) => {
        for (let i = 0; i < n; i++) S.applyLive('output', { seq: ++seq, run: id, pid: 4242, stream: 'out', t: t0 + seq / 100, text: `line ${seq}` });
        S.invalidate();
        await draw();
    };
    const box = document.getElementById('output');
    const gap = () => box.scrollHeight - box.scrollTop - box.clientHeight;
    const out = [];
    await print(lines);
    out.push(gap());
    if (scrollUp) {
        box.scrollTop = 40;
        await draw();   // the scroll event
    }
    const top = box.scrollTop;
    for (let k = 0; k < 5; k++) { await print(7); out.push(gap()); }
    return { gaps: out, top, topAfter: box.scrollTop, scrollable: box.scrollHeight > box.clientHeight + 100 };
}"""


def test_the_output_stays_at_the_bottom_only_when_the_reader_was_there(page):
    got = page.evaluate(SCROLL, {"lines": 80, "scrollUp": False})
    assert got["scrollable"]
    assert all(g < 2 for g in got["gaps"]), got      # followed every new line
    got = page.evaluate(SCROLL.replace("'printing'", "'printing-2'"), {"lines": 80, "scrollUp": True})
    assert got["top"] == 40 and got["topAfter"] == 40, got    # stayed where the reader went
    assert got["gaps"][-1] > 200, got
