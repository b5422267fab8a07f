"""The pool panel while the run is live (docs/API.md "Pool" and the `pools` hook): it appears
as soon as the server has the pools so far, its workers' task counts grow in place (the same
rows, updated, not rebuilt), every number is one a clock could give, and at the end it shows the
run's final pools."""
from __future__ import annotations

import time

import pytest

from tests.browser.conftest import pick, start, wait_state

pytestmark = pytest.mark.browser

READ = """() => {
  const s = window.mpdash.store, r = s.runs.get(s.selectedRun);
  const box = document.querySelector('[data-testid=pools]');
  const rows = [...box.querySelectorAll('[data-testid=pool-worker]')];
  // A row the page made for this pid before: marked once, the mark survives an update in place.
  const kept = rows.filter((n) => n.__seen).length;
  rows.forEach((n) => { n.__seen = true; });
  return {
    state: document.querySelector('[data-testid=run-state]').textContent.trim(),
    run: r && r.id, recState: r && r.state,
    visible: !document.getElementById('pools-panel').hidden, live: box.dataset.live,
    text: box.textContent, kept, marked: rows.length,
    workers: rows.map((n) => ({pid: +n.dataset.pid, tasks: +n.dataset.tasks, busy: +n.dataset.busy,
      idle: +n.dataset.idle, solid: parseFloat(n.querySelector('[data-testid=pool-busy]').style.width),
      idleBar: parseFloat(n.querySelector('.pool-idle').style.width),
      share: n.querySelector('.pool-n').textContent})),
    span: r && r.pools.length ? r.pools[0].span_s : null,
  };
}"""


def test_the_pool_panel_is_live_and_its_counts_grow_in_place(page):
    pick(page, "pool-map")
    before = page.evaluate("() => window.mpdash.store.selectedRun")
    # 12 tasks of 3 s on 3 workers: four rounds, ~12 s; the panel can show the rounds go by.
    start(page, "pool-map", workers=3, items=12, spin=3)
    page.wait_for_function("(old) => { const s = window.mpdash.store; return s.selectedRun && s.selectedRun !== old; }",
                           arg=before, timeout=15_000)
    seen = []
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        got = page.evaluate(READ)
        if got["visible"]:
            seen.append(got)
        if got["recState"] not in ("starting", "running"):
            break
        time.sleep(0.2)
    assert wait_state(page, timeout=30_000) == "finished"
    live = [s for s in seen if s["recState"] == "running" and s["state"] == "running"]
    assert live, "the pools panel never showed while the run was running"
    assert all(s["live"] == "true" and "so far" in s["text"] for s in live)
    totals = [sum(w["tasks"] for w in s["workers"]) for s in live]
    assert totals == sorted(totals) and totals[0] < totals[-1] < 12, totals   # grew, while live
    for s in seen:
        for w in s["workers"]:      # numbers a clock could give: none missing, none negative
            assert w["busy"] >= 0 and w["idle"] >= 0 and w["solid"] >= 0 and w["idleBar"] >= 0, w
            assert w["solid"] + w["idleBar"] <= 100 + 0.01, w   # CSS keeps ~6 digits
            share = int(w["share"].split("·")[1].strip().rstrip("%").strip())
            assert 0 <= share <= 100, w
            if s["span"] is not None:
                assert w["busy"] + w["idle"] <= s["span"] + 2e-6, (w, s["span"])
        assert "NaN" not in s["text"] and "undefined" not in s["text"], s["text"]
    # Updated in place: once shown, a worker's row is the same element on every later read.
    shown = [s for s in live if s["marked"]]
    assert all(s["kept"] == s["marked"] for s in shown[1:]), [(s["kept"], s["marked"]) for s in shown]
    # At the end: the run's final pools, every task counted, no longer "so far".
    page.wait_for_function("""() => { const b = document.querySelector('[data-testid=pools]');
        return b.dataset.live === 'false' && [...b.querySelectorAll('[data-testid=pool-worker]')]
          .reduce((n, w) => n + +w.dataset.tasks, 0) === 12; }""", timeout=15_000)
    final = page.evaluate(READ)
    server = page.evaluate("() => { const s = window.mpdash.store; return s.runs.get(s.selectedRun).pools; }")
    assert {w["pid"]: w["tasks"] for w in final["workers"]} == \
        {w["pid"]: w["tasks"] for w in server[0]["workers"]}
    assert "so far" not in final["text"]
