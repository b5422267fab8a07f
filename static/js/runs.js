// The history of runs (newest first), the replay scrubber of a finished run, and the
// side-by-side comparison of two runs of the same lesson.
import { store, runList, selectRun, loadRun, isLive, viewOf, invalidate } from "./store.js";
import { LineChart, coreColour, INTERVAL } from "./charts.js";
import { $, el, colourOf, fmtDuration, pyJson } from "./util.js";

const STATE_SHAPE = { starting: "◌", running: "●", finished: "✓", failed: "✕", stopped: "■" };
let listKey = null;
let playing = null;

function paramsText(params) {
  return Object.entries(params || {}).map(([k, v]) => `${k}=${v}`).join(" ");
}

function renderList() {
  const runs = runList();
  const now = Date.now() / 1000 + store.skew;
  const key = runs.map((r) => `${r.id}:${r.state}:${r.seq}:${r.id === store.selectedRun}`).join(",") + (runs.some(isLive) ? Math.floor(now) : "");
  if (key === listKey) return;
  listKey = key;
  const newest = runs[0]?.id;
  const items = runs.map((r) => {
    const lesson = store.lessonById.get(r.lesson);
    const dur = r.started_at ? (r.ended_at ?? now) - r.started_at : null;
    return el("li", {},
      el("button", {
        type: "button", class: `run-item rs-${r.state}`, "data-testid": "run-item", "data-run-id": r.id, "data-state": r.state,
        "aria-current": r.id === store.selectedRun ? "true" : null,
        onclick: () => selectRun(r.id, { follow: r.id === newest }),
      },
      el("span", { class: "rs-shape", "aria-hidden": "true" }, STATE_SHAPE[r.state] || "?"),
      el("span", { class: "ri-main" },
        el("span", { class: "ri-title" }, lesson ? lesson.title : r.title || r.lesson),
        el("span", { class: "ri-params" }, paramsText(r.params))),
      el("span", { class: "ri-side" },
        el("span", { class: "ri-state" }, r.state),
        el("span", { class: "ri-dur num" }, dur === null ? "" : fmtDuration(dur)))));
  });
  $("run-list").replaceChildren(...(items.length ? items : [el("li", { class: "empty" }, "No runs yet.")]));
}

function renderComparePick() {
  const rec = store.runs.get(store.selectedRun);
  const select = $("compare-select");
  const others = rec ? runList().filter((r) => r.lesson === rec.lesson && r.id !== rec.id && !isLive(r)) : [];
  const key = others.map((r) => r.id).join(",") + `|${rec?.id}`;
  if (select.dataset.key === key) return;
  select.dataset.key = key;
  select.replaceChildren(el("option", { value: "" }, others.length ? "— another run of this lesson —" : "— no other run of this lesson —"),
    ...others.map((r) => el("option", { value: r.id }, `${paramsText(r.params) || "defaults"} · ${r.state} · ${fmtDuration((r.ended_at ?? 0) - r.started_at)}`)));
  select.disabled = !others.length;
}

// ---- replay ----------------------------------------------------------------------------------

function scrubRange(rec) {
  const t0 = rec.started_at;
  const t1 = rec.ended_at ?? rec.frames.at(-1)?.t ?? t0;
  return [t0, Math.max(t1, t0 + 0.01)];
}

function onScrub() {
  const rec = store.runs.get(store.selectedRun);
  if (!rec || isLive(rec)) return;
  const [t0, t1] = scrubRange(rec);
  const v = Number($("scrubber").value);
  store.scrub = v >= 1000 ? null : t0 + (v / 1000) * (t1 - t0);
  invalidate();
}

function togglePlay() {
  if (playing) {
    cancelAnimationFrame(playing.raf);
    playing = null;
    $("scrub-play").textContent = "▶ Play";
    return;
  }
  const rec = store.runs.get(store.selectedRun);
  if (!rec || isLive(rec)) return;
  const [t0, t1] = scrubRange(rec);
  const from = store.scrub === null ? t0 : store.scrub;
  // Real time, but never less than 4 s for a short run: slow enough to follow.
  const speed = Math.min(1, (t1 - t0) / 4);
  const started = performance.now();
  $("scrub-play").textContent = "❚❚ Pause";
  const tick = () => {
    const t = from + ((performance.now() - started) / 1000) * speed;
    if (t >= t1 || store.selectedRun !== rec.id) {
      store.scrub = null;
      playing = null;
      $("scrub-play").textContent = "▶ Play";
    } else {
      store.scrub = t;
      playing.raf = requestAnimationFrame(tick);
    }
    invalidate();
  };
  playing = { raf: requestAnimationFrame(tick) };
}

function renderReplay(view) {
  const rec = view?.rec;
  const show = !!rec && !isLive(rec) && rec.full;
  $("replay").hidden = !show;
  if (!show) return;
  const [t0, t1] = scrubRange(rec);
  const scrubber = $("scrubber");
  const v = store.scrub === null ? 1000 : Math.round(((store.scrub - t0) / (t1 - t0)) * 1000);
  if (document.activeElement !== scrubber) scrubber.value = String(v);
  const at = store.scrub === null ? t1 - t0 : Math.max(0, store.scrub - t0);
  $("scrub-time").textContent = `${at.toFixed(2)} s / ${(t1 - t0).toFixed(2)} s`;
  scrubber.setAttribute("aria-valuetext", `${at.toFixed(2)} seconds of ${(t1 - t0).toFixed(2)}`);
  document.body.classList.toggle("replaying", !!view.replaying);
}

// ---- compare ---------------------------------------------------------------------------------

let compareKey = null;

async function openCompare(otherId) {
  if (!otherId || !store.selectedRun) return;
  store.compareWith = otherId;
  await Promise.all([loadRun(store.selectedRun), loadRun(otherId)]);
  compareKey = null;
  const dialog = $("compare");
  if (!dialog.open) dialog.showModal();
  invalidate();
}

function closeCompare() {
  store.compareWith = null;
  $("compare-select").value = "";
  if ($("compare").open) $("compare").close();
}

function compareColumn(rec) {
  const view = viewOf(rec);
  const lesson = store.lessonById.get(rec.lesson);
  const coresHost = el("div", { class: "chart" });
  const cpuHost = el("div", { class: "chart" });
  const col = el("section", { class: "compare-col", "data-testid": "compare-col", "data-run-id": rec.id },
    el("h3", {}, lesson ? lesson.title : rec.lesson, el("span", { class: "sub" }, ` ${paramsText(rec.params)}`)),
    el("div", { class: "compare-meta num" }, `${rec.state} · ${fmtDuration((rec.ended_at ?? 0) - rec.started_at)} · ${rec.procs.size} processes`),
    el("h4", {}, "Findings"),
    el("ul", { class: "findings" }, ...(rec.findings || []).map((f) => el("li", { "data-testid": `finding-${f.key}` }, f.text))),
    el("h4", {}, "Result"),
    el("pre", { class: "result num" }, pyJson(rec.result)),
    el("div", { class: "chart-label" }, "cores (CPU %)"), coresHost,
    el("div", { class: "chart-label" }, "CPU % per process"), cpuHost);
  return { col, view, coresHost, cpuHost };
}

let compareCharts = [];

function dropCompareCharts() {
  for (const chart of compareCharts) chart.destroy();
  compareCharts = [];
}

function renderCompare() {
  const dialog = $("compare");
  if (!dialog.open) return;
  const a = store.runs.get(store.selectedRun);
  const b = store.runs.get(store.compareWith);
  if (!a?.full || !b?.full) return;
  const key = `${a.id}:${a.version}|${b.id}:${b.version}`;
  if (key === compareKey) return;
  compareKey = key;
  dropCompareCharts();
  const cols = [a, b].sort((x, y) => x.started_at - y.started_at).map(compareColumn);
  $("compare-cols").replaceChildren(...cols.map((c) => c.col));
  // Both columns share one x range, so the same time sits at the same place.
  const xMax = Math.max(...cols.map((c) => c.view.xMax));
  for (const c of cols) {
    const frames = c.view.frames;
    const x = frames.map((f) => f.t - c.view.t0);
    const n = frames.at(-1)?.cores.length || 1;
    // CPU % is an average since the previous sample: a step over that interval, as on the page.
    const coresChart = new LineChart(c.coresHost, { yUnit: " %", yFloor: 100, height: 150, step: INTERVAL });
    compareCharts.push(coresChart);
    const coreData = [x];
    for (let k = 0; k < n; k++) coreData.push(frames.map((f) => f.cores[k] ?? null));
    coresChart.update([...Array(n).keys()].map((k) => ({ id: `c${k}`, label: `core ${k}`, colour: coreColour(k, n), dash: k % 2 ? [6, 4] : null })), coreData, [0, xMax]);
    const procs = [...c.view.procs].sort((p, q) => p.colour - q.colour);
    const cpuChart = new LineChart(c.cpuHost, { yUnit: " %", yFloor: 100, height: 150, step: INTERVAL });
    compareCharts.push(cpuChart);
    const cpuData = [x, ...procs.map((p) => frames.map((f) => {
      const i = f.pid.indexOf(p.pid);
      return i < 0 ? null : f.cpu[i];
    }))];
    cpuChart.update(procs.map((p) => ({ id: p.pid, label: String(p.pid), ...colourOf(p.colour) })), cpuData, [0, xMax]);
  }
}

export function init() {
  $("scrubber").addEventListener("input", onScrub);
  $("scrub-play").addEventListener("click", togglePlay);
  $("compare-select").addEventListener("change", (e) => openCompare(e.target.value));
  $("compare-close").addEventListener("click", closeCompare);
  $("compare").addEventListener("close", () => {
    dropCompareCharts();
    store.compareWith = null;
    $("compare-select").value = "";
  });
}

export function render(view) {
  renderList();
  renderComparePick();
  renderReplay(view);
  renderCompare();
}
