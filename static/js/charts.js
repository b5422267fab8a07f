// uPlot charts on one shared time axis (seconds since the run started): the machine's cores with
// this run's share set apart from other programs, CPU % per process, RSS per process, each with
// a legend. Values are drawn as measured: a CPU % is the average since the previous sample, so it
// is a flat step over that interval; an RSS reading holds until the next one. A chart is rebuilt
// only when its series change (a process is born) or the look changes.
import uPlot from "/static/vendor/uplot/uPlot.esm.js";
import { store, LIVE_WINDOW_S, serverNow, highlighted } from "./store.js";
import { look } from "./controls.js";
import { $, el, colourOf, cssVar, fmtNum, ROUND_INCRS, decimalsOf } from "./util.js";
import { phases } from "./phases.js";
import { Heatmap } from "./heatmap.js";
import { MANY } from "./groups.js";
import { treeOrder } from "./tree.js";

// Which way a step goes: -1 = the value describes the interval that ends at its sample (CPU %
// since the previous sample), 1 = it holds from its sample until the next (a reading, RSS).
export const INTERVAL = -1;
export const HOLD = 1;

// Two processes often read exactly the same (two idle children: 0 % CPU, 14.4 MiB): drawn with
// one width, the later line hides the earlier. Each series is drawn a little wider than the one
// after it (five widths, cycling), so identical lines show as nested stripes of both colours.
function nest(i, n) {
  return 1.4 * ((n - 1 - i) % 5);
}

class LineChart {
  constructor(host, { yUnit, yMin = 0, yFloor = 1, height = 170, stepped = false, step = null, whole = false }) {
    this.whole = whole;   // counts (queue depth): no tick between two whole numbers
    // `stepped` (older callers): hold each value until the next sample.
    this.step = step ?? (stepped ? HOLD : null);
    this.height = height;
    this.host = host;
    this.yUnit = yUnit;
    this.yMin = yMin;
    this.yFloor = yFloor;
    this.plot = null;
    this.key = null;
    this.series = [];
    this.lives = [];      // [{a, b, colour}]: processes never sampled, drawn as their lifetime
    this.focused = null;
    this.xRange = [0, 1];
    this.observer = new ResizeObserver(() => {
      if (this.plot && this.host.clientWidth) this.plot.setSize(this.size());
    });
    this.observer.observe(host);
  }

  /** Release the plot and the observer (charts made for a dialog would otherwise pile up). */
  destroy() {
    this.observer.disconnect();
    this.plot?.destroy();
    this.plot = null;
  }

  size() {
    const presenting = document.documentElement.classList.contains("presenting");
    return { width: Math.max(200, this.host.clientWidth), height: Math.round(this.height * (presenting ? 1.35 : 1)) };
  }

  build(series) {
    const presenting = document.documentElement.classList.contains("presenting");
    const ink = cssVar("--ink-2");
    const grid = cssVar("--grid");
    const font = `${presenting ? 17 : 12}px ${cssVar("--font-ui") || "sans-serif"}`;
    const width = presenting ? 3.5 : 2;
    const axis = {
      stroke: ink, font, grid: { stroke: grid, width: 1 }, ticks: { stroke: grid, width: 1, size: 4 },
    };
    // Steps of 1, 2 or 5 × 10^k only, printed with the decimals the step needs.
    const values = (unit) => (u, splits, axisIdx, space, incr) => {
      const dec = decimalsOf(incr || (splits.length > 1 ? Math.abs(splits[1] - splits[0]) : 1));
      return splits.map((s) => `${fmtNum(s, dec)}${unit}`);
    };
    const opts = {
      ...this.size(),
      legend: { show: false },
      focus: { alpha: 0.22 },
      hooks: { draw: [(u) => this.drawLives(u)] },
      cursor: { drag: { x: false, y: false }, points: { size: 6 }, focus: { prox: -1 } },
      scales: {
        x: { time: false, range: () => this.xRange },
        y: { range: (u, min, max) => [this.yMin, Math.max(this.yFloor, (max ?? 0) * 1.08)] },
      },
      axes: [
        { ...axis, incrs: ROUND_INCRS, values: values(" s") },
        { ...axis, size: presenting ? 70 : 56, incrs: this.whole ? ROUND_INCRS.filter((s) => s >= 1) : ROUND_INCRS, values: values(this.yUnit) },
      ],
      series: [{}, ...series.map((s, i) => ({
        label: s.label, stroke: s.colour, width: s.width ?? width + nest(i, series.length), dash: s.dash || undefined,
        fill: s.fill, spanGaps: false,
        // A value with no neighbour (a process sampled once) has no segment: a dot marks it.
        points: { show: false, filter: isolatedPoints, size: (presenting ? 11 : 8) + 2 * nest(i, series.length), width: 2, fill: s.colour },
        paths: (s.step ?? this.step) !== null ? uPlot.paths.stepped({ align: s.step ?? this.step }) : undefined,
      }))],
    };
    if (this.plot) this.plot.destroy();
    this.host.replaceChildren();
    this.plot = new uPlot(opts, [[], ...series.map(() => [])], this.host);
    this.focused = null;
  }

  /** series: [{id, label, colour, dash, step?, fill?}], data: [x[], ...ys[]], xRange: [min, max] */
  update(series, data, xRange) {
    const key = `${look.version}|${series.map((s) => `${s.id}:${s.colour}:${s.dash}`).join(",")}`;
    this.xRange = xRange;
    this.series = series;
    if (key !== this.key || !this.plot) {
      this.key = key;
      this.build(series);
    }
    this.plot.setData(data);
  }

  /**
   * A process that lived and ended between two samples has no value to draw, but it existed:
   * its lifetime is drawn as a hollow bar along the bottom of the plot (never as a value), so
   * every process of the run leaves a mark where it lived.
   */
  drawLives(u) {
    if (!this.lives.length) return;
    const ctx = u.ctx;
    const { left, top, width, height } = u.bbox;
    const y = Math.round(top + height - 6 * devicePixelRatio);   // whole pixels: a crisp outline
    ctx.save();
    ctx.lineWidth = 2 * devicePixelRatio;
    for (const life of this.lives) {
      const a = Math.round(Math.max(left, u.valToPos(life.a, "x", true)));
      const b = Math.round(Math.min(left + width, Math.max(a + 8 * devicePixelRatio, u.valToPos(life.b, "x", true))));
      if (b <= left || a >= left + width) continue;
      ctx.strokeStyle = life.colour;
      ctx.strokeRect(a, y - 3 * devicePixelRatio, b - a, 6 * devicePixelRatio);
    }
    ctx.restore();
  }

  /** Bring one series forward (the others fade), or none. */
  focus(id) {
    if (!this.plot) return;
    const i = id === null || id === undefined ? -1 : this.series.findIndex((s) => String(s.id) === String(id));
    const want = i < 0 ? null : i + 1;
    if (want === this.focused) return;
    this.focused = want;
    this.plot.setSeries(want, { focus: true });
  }
}

let cores, procCpu, procMem, heatmap, heatHost;
const legends = {};
const notes = {};
const FEW = 5;   // past MANY processes, the lines kept: the busiest few (the heatmap has them all)

export function init() {
  cores = new LineChart($("chart-cpu-cores"), { yUnit: " %", yFloor: 100, height: 130, step: INTERVAL });
  procCpu = new LineChart($("chart-proc-cpu"), { yUnit: " %", yFloor: 100, step: INTERVAL });
  procMem = new LineChart($("chart-proc-mem"), { yUnit: " MiB", yFloor: 1, step: HOLD });
  for (const [id, label] of [["chart-proc-cpu", "CPU % per process (average since the previous sample)"], ["chart-proc-mem", "memory (RSS) per process, MiB"]]) {
    const host = $(id);
    const wrap = el("div", { class: "chart-cell" });
    host.replaceWith(wrap);
    legends[id] = el("div", { class: "legend", "data-testid": "legend", "data-chart": id, role: "group", "aria-label": `legend of ${label}` });
    notes[id] = el("div", { class: "chart-note", "data-testid": "chart-note" });
    wrap.append(el("div", { class: "chart-label" }, label), host, legends[id], notes[id]);
  }
  heatHost = el("div", { class: "heatmap", hidden: true });
  notes["chart-proc-cpu"].after(heatHost);
  heatmap = new Heatmap(heatHost);
  const coresHost = $("chart-cpu-cores");
  legends.cores = el("div", { class: "legend cores-legend", "data-testid": "cores-legend" });
  coresHost.after(legends.cores);
}

function coreColour(i, n) {
  const dark = document.documentElement.dataset.theme === "dark";
  const light = dark ? 55 + (30 * i) / Math.max(1, n - 1) : 28 + (32 * i) / Math.max(1, n - 1);
  return `hsl(205, 70%, ${light}%)`;
}

/** Frames inside the visible window (plus one before it, so lines enter from the edge). */
function visibleFrames(frames, t0, xMin) {
  let lo = 0;
  let hi = frames.length;
  const tMin = t0 + xMin;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (frames[mid].t < tMin) lo = mid + 1;
    else hi = mid;
  }
  return frames.slice(Math.max(0, lo - 1));
}

// A value with no neighbour has no segment to draw (a process sampled once: it lived less than a
// sample period): uPlot then shows nothing unless that one point is drawn as a dot.
function isolatedPoints(u, seriesIdx) {
  const ys = u.data[seriesIdx], idxs = [];
  for (let i = 0; i < ys.length; i++) {
    if (ys[i] != null && ys[i - 1] == null && ys[i + 1] == null) idxs.push(i);
  }
  return idxs.length ? idxs : null;
}

/**
 * Per frame: the machine's CPU (mean of its cores, all programs) and this run's share of it
 * (its processes' CPU summed, over the number of cores). Both are % of the whole machine. The
 * two are measured over slightly different windows, so the run's share is capped at the
 * machine's: a run never uses more than everything.
 */
export function machineSplit(frames, pids) {
  const machine = [];
  const run = [];
  for (const f of frames) {
    const n = f.cores.length || 1;
    const m = f.cores.reduce((a, b) => a + b, 0) / n;
    let own = 0;
    if (pids && f.pid) for (let i = 0; i < f.pid.length; i++) if (pids.has(f.pid[i])) own += f.cpu[i] || 0;
    machine.push(Math.min(100, m));
    run.push(pids ? Math.min(100, own / n, Math.max(m, 0)) : null);
  }
  return { machine, run };
}

function drawCores(frames, t0, xRange, pids) {
  const n = frames.length ? frames[frames.length - 1].cores.length : store.system?.cores || 1;
  const grey = cssVar("--ink-3") || "#888";
  const accent = cssVar("--accent") || "#0072B2";
  const { machine, run } = machineSplit(frames, pids);
  const series = [{ id: "machine", label: "whole machine (every program)", colour: grey, fill: `${grey}33`, width: 1 }];
  const data = [frames.map((f) => f.t - t0), machine];
  if (pids) {
    series.push({ id: "run", label: "this run's processes", colour: accent, fill: `${accent}66`, width: 1.5 });
    data.push(run);
  }
  for (let c = 0; c < n; c++) {
    series.push({ id: `core${c}`, label: `core ${c}`, colour: coreColour(c, n), dash: c % 2 ? [6, 4] : null, width: 1.2 });
    data.push(frames.map((f) => f.cores[c] ?? null));
  }
  cores.update(series, data, xRange);
  const recent = recentAverage(frames, machine, run, BAR_WINDOW_S);
  drawCoreBars(recent.cores, pids ? recent : null);
  const legendKey = `${series.map((s) => s.id + s.colour).join()}`;
  if (legends.cores.dataset.key !== legendKey) {
    legends.cores.dataset.key = legendKey;
    legends.cores.replaceChildren(...series.map((s) => el("span", { class: "legend-item static", "data-series": s.id }, swatch(s, s.fill), s.label)));
  }
}

const BAR_WINDOW_S = 0.5;

/**
 * The bars' numbers: the last half second, each frame weighted by the time it covers. A frame
 * taken a millisecond after the previous one (a birth, the run's end) spans no CPU tick and
 * reads 0 % on every core: alone, it would show an idle machine that is in fact full.
 */
function recentAverage(frames, machine, run, window) {
  const last = frames.at(-1);
  if (!last) return { cores: [], machine: null, run: null };
  const n = last.cores.length;
  const sums = new Array(n).fill(0);
  let m = 0, r = 0, w = 0;
  for (let k = frames.length - 1; k >= 1 && last.t - frames[k].t < window; k--) {
    const dt = frames[k].t - frames[k - 1].t;
    if (dt <= 0) continue;
    for (let c = 0; c < n; c++) sums[c] += dt * (frames[k].cores[c] ?? 0);
    m += dt * machine[k];
    r += dt * (run[k] ?? 0);
    w += dt;
  }
  if (!w) return { cores: last.cores, machine: machine.at(-1), run: run.at(-1) };
  return { cores: sums.map((v) => v / w), machine: m / w, run: run.at(-1) === null ? null : r / w };
}

function drawCoreBars(values, split) {
  const box = $("core-bars");
  if (box.querySelectorAll(".core-bar").length !== values.length) {
    box.replaceChildren(...values.map((_, i) => el("div", { class: "core-bar", "data-testid": `core-${i}` },
      el("span", { class: "core-name" }, `core ${i}`),
      el("span", { class: "bar" }, el("span", { class: "fill" })),
      el("span", { class: "num pct" }))),
    el("div", { class: "cores-split num", "data-testid": "cores-split" }));
  }
  values.forEach((v, i) => {
    const row = box.children[i];
    row.querySelector(".fill").style.width = `${Math.min(100, v)}%`;
    row.querySelector(".pct").textContent = `${fmtNum(v, 0)} %`;
  });
  const node = box.querySelector(".cores-split");
  if (!node) return;
  if (split && split.run !== null && split.run !== undefined) {
    const other = Math.max(0, split.machine - split.run);
    node.dataset.run = split.run.toFixed(1);
    node.dataset.other = other.toFixed(1);
    node.textContent = `last ${BAR_WINDOW_S} s, of the whole machine: this run ${fmtNum(split.run, 0)} % · other programs ${fmtNum(other, 0)} %`;
  } else {
    node.textContent = "";
    delete node.dataset.run;
    delete node.dataset.other;
  }
}

/** A small line sample in the series' colour and dash (an SVG line: no inline style needed). */
function swatch(s, fill = null) {
  const ns = "http://www.w3.org/2000/svg";
  const svg = document.createElementNS(ns, "svg");
  svg.setAttribute("class", "swatch");
  svg.setAttribute("viewBox", "0 0 22 10");
  svg.setAttribute("aria-hidden", "true");
  if (fill) {
    const r = document.createElementNS(ns, "rect");
    for (const [k, v] of Object.entries({ x: 0, y: 2, width: 22, height: 8, fill })) r.setAttribute(k, v);
    svg.append(r);
  }
  const line = document.createElementNS(ns, "line");
  for (const [k, v] of Object.entries({ x1: 0, y1: fill ? 2 : 5, x2: 22, y2: fill ? 2 : 5, stroke: s.colour, "stroke-width": 3 })) line.setAttribute(k, v);
  if (s.dash) line.setAttribute("stroke-dasharray", s.dash.join(" "));
  svg.append(line);
  return svg;
}

function legendFor(id, view, procs, sampled) {
  const box = legends[id];
  const phaseOf = phases(view);
  const key = `${view.rec.id}|${look.version}|${procs.map((p) => `${p.pid}:${p.name}:${sampled.has(p.pid)}:${phaseOf.get(p.pid) || ""}`).join(",")}`;
  if (box.dataset.key === key) return;
  box.dataset.key = key;
  box.replaceChildren(...procs.map((p) => {
    const { colour, dash } = colourOf(p.colour);
    const who = p.role === "main" ? "main" : p.name || p.role;
    const phase = phaseOf.get(p.pid);
    return el("button", {
      type: "button", class: "legend-item", "data-testid": "legend-item", "data-pid": p.pid, "aria-pressed": "false",
      title: `${p.pid} ${who}${phase ? ` (${phase} phase)` : ""}: point to highlight it in every panel, click to keep it highlighted`,
    }, swatch({ colour, dash }), el("span", { class: "num" }, String(p.pid)), " ", el("span", { class: "legend-who" }, who),
    phase ? el("span", { class: "legend-phase" }, ` · ${phase}`) : null,
    sampled.has(p.pid) ? null : el("span", { class: "legend-none", title: "it lived and ended between two samples: a hollow bar at the bottom of the chart marks its lifetime" }, " · not sampled"));
  }));
}

/**
 * Each reading's slot: a small integer per pid, fixed for the run, cached on the frame (frames
 * never change once stored). Past a few dozen processes, per-draw loops over 600 frames × 256
 * readings are typed-array indexing instead of Map lookups.
 */
export function slotsOf(rec, f) {
  if (f._slots) return f._slots;
  const m = rec._slot || (rec._slot = new Map());
  const out = new Int32Array(f.pid.length);
  for (let i = 0; i < f.pid.length; i++) {
    let s = m.get(f.pid[i]);
    if (s === undefined) m.set(f.pid[i], (s = m.size));
    out[i] = s;
  }
  f._slots = out;
  return out;
}

function slotOf(rec, pid) {
  const m = rec._slot || (rec._slot = new Map());
  let s = m.get(pid);
  if (s === undefined) m.set(pid, (s = m.size));
  return s;
}

/** The cpu and rss columns (one value per frame, null where not sampled) of a few pids. */
function columns(rec, frames, pids) {
  const want = new Int32Array(Math.max(1, (rec._slot?.size || 0) + pids.length)).fill(-1);
  pids.forEach((pid, k) => { want[slotOf(rec, pid)] = k; });
  const cpu = pids.map(() => new Array(frames.length).fill(null));
  const rss = pids.map(() => new Array(frames.length).fill(null));
  frames.forEach((f, j) => {
    const slots = slotsOf(rec, f);
    for (let i = 0; i < slots.length; i++) {
      const k = slots[i] < want.length ? want[slots[i]] : -1;
      if (k < 0) continue;
      cpu[k][j] = f.cpu[i];
      // A process caught while exiting (a zombie, or one releasing its memory) reads 0: no
      // running Python has 0 KiB resident, so that is "no reading", not a drop to 0 MiB.
      rss[k][j] = f.rss[i] ? f.rss[i] / 1024 : null;
    }
  });
  return { cpu, rss };
}

/** Indices of the `few` largest by score (ties: the earlier colour), in their first order. */
function topFew(scores, few) {
  return scores.map((v, k) => [v, k]).sort((a, b) => b[0] - a[0] || a[1] - b[1]).slice(0, few).map((x) => x[1]).sort((a, b) => a - b);
}

/** Per pid over the frames: mean CPU and peak RSS, one pass over typed arrays. */
function scores(rec, frames, procs) {
  for (const p of procs) slotOf(rec, p.pid);
  const n = rec._slot.size;
  const sum = new Float64Array(n), count = new Uint32Array(n), peak = new Float64Array(n);
  for (const f of frames) {
    const slots = slotsOf(rec, f);
    for (let i = 0; i < slots.length; i++) {
      const s = slots[i];
      sum[s] += f.cpu[i] || 0;
      count[s] += 1;
      if (f.rss[i] > peak[s]) peak[s] = f.rss[i];
    }
  }
  const at = (pid) => rec._slot.get(pid);
  return { mean: (pid) => (count[at(pid)] ? sum[at(pid)] / count[at(pid)] : 0), peak: (pid) => peak[at(pid)] };
}

function drawProcs(view, frames, xRange) {
  const procs = [...view.procs].sort((a, b) => a.colour - b.colour);
  const x = frames.map((f) => f.t - view.t0);
  const many = procs.length > MANY;
  // Which processes were ever sampled (a legend says "not sampled" of one that never was, and
  // the chart marks its life): one typed pass over the run's frames by slot.
  const seen = new Uint8Array(procs.length ? Math.max(...procs.map((p) => slotOf(view.rec, p.pid))) + 1 : 1);
  for (const f of view.frames) for (const sl of slotsOf(view.rec, f)) if (sl < seen.length) seen[sl] = 1;
  const sampled = new Set(procs.filter((p) => seen[slotOf(view.rec, p.pid)]).map((p) => p.pid));
  // Past MANY processes, forty tangled lines say nothing: the heatmap shows every process, the
  // lines only the busiest few over the window shown (memory: the largest few).
  let cpuIdx = procs.map((_, k) => k);
  let memIdx = cpuIdx;
  if (many) {
    const sc = scores(view.rec, frames, procs);
    cpuIdx = topFew(procs.map((p) => sc.mean(p.pid)), FEW);
    memIdx = topFew(procs.map((p) => sc.peak(p.pid)), FEW);
  }
  const wanted = [...new Set([...cpuIdx, ...memIdx])];
  const cols = columns(view.rec, frames, wanted.map((k) => procs[k].pid));
  const at = new Map(wanted.map((k, j) => [k, j]));
  const cpu = cpuIdx.map((k) => cols.cpu[at.get(k)]);
  const rss = memIdx.map((k) => cols.rss[at.get(k)]);
  const seriesOf = (idx) => idx.map((k) => ({ id: procs[k].pid, label: `${procs[k].pid}`, ...colourOf(procs[k].colour) }));
  const lives = procs.filter((p) => !sampled.has(p.pid)).map((p) => ({
    a: (p.started_at ?? view.t0) - view.t0, b: (p.ended_at ?? view.tNow) - view.t0, colour: colourOf(p.colour).colour }));
  procCpu.lives = procMem.lives = lives;
  procCpu.update(seriesOf(cpuIdx), [x, ...cpu], xRange);
  procMem.update(seriesOf(memIdx), [x, ...rss], xRange);
  legendFor("chart-proc-cpu", view, cpuIdx.map((k) => procs[k]), sampled);
  legendFor("chart-proc-mem", view, memIdx.map((k) => procs[k]), sampled);
  const more = procs.length - FEW;
  notes["chart-proc-cpu"].textContent = many ? `The ${FEW} busiest of ${procs.length} processes as lines; every process below, one row each (colour = CPU %).` : "";
  notes["chart-proc-mem"].textContent = many ? `The ${FEW} largest of ${procs.length} processes (${more} more not drawn).` : "";
  heatHost.hidden = !many;
  if (many) {
    const rows = treeOrder(view.procs).map(({ p }) => ({ pid: p.pid, slot: slotOf(view.rec, p.pid), label: `${p.pid} ${p.role === "main" ? "main" : p.name || p.role}` }));
    const bb = procCpu.plot?.bbox, dpr = window.devicePixelRatio || 1;
    heatmap.draw(rows, frames, view.t0, xRange, bb ? { left: bb.left / dpr, width: bb.width / dpr } : null, (f) => slotsOf(view.rec, f));
  }
}

// The rate frames really arrive at (a busy machine takes fewer, births add some), measured over
// the last 2 s of frames rather than the configured --hz.
function showRate() {
  const frames = store.machineFrames, node = $("sample-rate");
  if (!node) return;
  const last = frames.length ? frames[frames.length - 1].t : 0;
  const recent = frames.filter((f) => f.t >= last - 2);
  const live = last && serverNow() - last < 2.5 && recent.length > 2;
  const hz = live ? (recent.length - 1) / (last - recent[0].t) : 0;
  node.textContent = live ? `· sampled at ${hz.toFixed(1)} Hz` : "";
  node.title = `configured: ${store.system?.sample_hz ?? "?"} Hz (--hz)`;
}

/** The highlighted process stands out in both process charts (called after every draw). */
export function focus(pid) {
  procCpu?.focus(pid);
  procMem?.focus(pid);
}

export function render(view) {
  showRate();
  if (!view) {
    // No run shown: the machine's cores, live, so the page is alive before the first Run.
    const now = serverNow();
    const frames = store.machineFrames;
    cores && drawCores(frames, now - LIVE_WINDOW_S, [0, LIVE_WINDOW_S], null);
    procCpu.lives = procMem.lives = [];
    procCpu.update([], [[]], [0, LIVE_WINDOW_S]);
    procMem.update([], [[]], [0, LIVE_WINDOW_S]);
    heatHost.hidden = true;
    for (const n of Object.values(notes)) n.textContent = "";
    for (const id of ["chart-proc-cpu", "chart-proc-mem"]) {
      legends[id].replaceChildren();
      legends[id].dataset.key = "";
    }
    return;
  }
  const xRange = [view.xMin, view.xMax];
  const frames = visibleFrames(view.frames, view.t0, view.xMin);
  drawCores(frames, view.t0, xRange, new Set(view.procs.map((p) => p.pid)));
  drawProcs(view, frames, xRange);
  focus(highlighted());
}

/** The page's charts, read-only for tests (window.mpdash.charts): plot, series ids. */
export function exposed() {
  const one = (c) => (c ? { plot: c.plot, ids: c.series.map((s) => String(s.id)), focused: c.focused } : null);
  return { cores: one(cores), cpu: one(procCpu), mem: one(procMem), heatmap };
}

export { LineChart, coreColour, visibleFrames };
