// uPlot charts on one shared time axis (seconds since the run started): per-core CPU of the
// machine, CPU % per process, RSS per process. A chart is rebuilt only when its series change
// (a process is born) or the look changes; otherwise it gets new data once per animation frame.
import uPlot from "/static/vendor/uplot/uPlot.esm.js";
import { store, LIVE_WINDOW_S, serverNow } from "./store.js";
import { look } from "./controls.js";
import { $, el, colourOf, cssVar, fmtNum } from "./util.js";

class LineChart {
  constructor(host, { yUnit, yMin = 0, yFloor = 1, decimals = 0, height = 170, stepped = false }) {
    this.stepped = stepped;
    this.height = height;
    this.host = host;
    this.yUnit = yUnit;
    this.yMin = yMin;
    this.yFloor = yFloor;
    this.decimals = decimals;
    this.plot = null;
    this.key = null;
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
    const opts = {
      ...this.size(),
      legend: { show: false },
      cursor: { drag: { x: false, y: false }, points: { size: 6 } },
      scales: {
        x: { time: false, range: () => this.xRange },
        y: { range: (u, min, max) => [this.yMin, Math.max(this.yFloor, (max ?? 0) * 1.08)] },
      },
      axes: [
        { ...axis, values: (u, splits) => {
          const step = splits.length > 1 ? Math.abs(splits[1] - splits[0]) : 1;
          const dec = step < 0.1 ? 2 : step < 1 ? 1 : 0;
          return splits.map((s) => `${fmtNum(s, dec)} s`);
        } },
        { ...axis, size: presenting ? 70 : 52, values: (u, splits) => splits.map((s) => `${fmtNum(s, this.decimals)}${this.yUnit}`) },
      ],
      series: [{}, ...series.map((s) => ({
        label: s.label, stroke: s.colour, width: s.width ?? width, dash: s.dash || undefined,
        fill: s.fill, points: { show: false, filter: isolatedPoints }, spanGaps: false,
        paths: this.stepped ? uPlot.paths.stepped({ align: 1 }) : undefined,
      }))],
    };
    if (this.plot) this.plot.destroy();
    this.host.replaceChildren();
    this.plot = new uPlot(opts, [[], ...series.map(() => [])], this.host);
  }

  /** series: [{id, label, colour, dash}], data: [x[], ...ys[]], xRange: [min, max] */
  update(series, data, xRange) {
    const key = `${look.version}|${series.map((s) => `${s.id}:${s.colour}`).join(",")}`;
    this.xRange = xRange;
    if (key !== this.key || !this.plot) {
      this.key = key;
      this.build(series);
    }
    this.plot.setData(data);
  }
}

let cores, procCpu, procMem;

export function init() {
  cores = new LineChart($("chart-cpu-cores"), { yUnit: " %", yFloor: 100, height: 130 });
  procCpu = new LineChart($("chart-proc-cpu"), { yUnit: " %", yFloor: 100 });
  procMem = new LineChart($("chart-proc-mem"), { yUnit: " MiB", yFloor: 1, decimals: 0 });
  for (const [id, label] of [["chart-proc-cpu", "CPU % per process"], ["chart-proc-mem", "memory (RSS) per process"]]) {
    const host = $(id);
    const wrap = el("div", { class: "chart-cell" });
    host.replaceWith(wrap);
    wrap.append(el("div", { class: "chart-label" }, label), host);
  }
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

// A value with no neighbour has no segment to draw (a process sampled once: it crashed right
// after its start): uPlot then shows nothing unless that one point is drawn as a dot.
function isolatedPoints(u, seriesIdx) {
  const ys = u.data[seriesIdx], idxs = [];
  for (let i = 0; i < ys.length; i++) {
    if (ys[i] != null && ys[i - 1] == null && ys[i + 1] == null) idxs.push(i);
  }
  return idxs.length ? idxs : null;
}

function drawCores(frames, t0, xRange) {
  const n = frames.length ? frames[frames.length - 1].cores.length : store.system?.cores || 1;
  const series = [];
  for (let c = 0; c < n; c++) series.push({ id: `core${c}`, label: `core ${c}`, colour: coreColour(c, n), dash: c % 2 ? [6, 4] : null });
  const data = [frames.map((f) => f.t - t0)];
  for (let c = 0; c < n; c++) data.push(frames.map((f) => f.cores[c] ?? null));
  cores.update(series, data, xRange);
  drawCoreBars(frames.at(-1)?.cores || []);
}

function drawCoreBars(values) {
  const box = $("core-bars");
  if (box.children.length !== values.length) {
    box.replaceChildren(...values.map((_, i) => el("div", { class: "core-bar", "data-testid": `core-${i}` },
      el("span", { class: "core-name" }, `core ${i}`),
      el("span", { class: "bar" }, el("span", { class: "fill" })),
      el("span", { class: "num pct" }))));
  }
  values.forEach((v, i) => {
    const row = box.children[i];
    row.querySelector(".fill").style.width = `${Math.min(100, v)}%`;
    row.querySelector(".pct").textContent = `${fmtNum(v, 0)} %`;
  });
}

function drawProcs(view, frames, xRange) {
  const procs = [...view.procs].sort((a, b) => a.colour - b.colour);
  const series = procs.map((p) => ({ id: p.pid, label: `${p.pid}`, ...colourOf(p.colour) }))
    .map((s) => ({ ...s, colour: s.colour }));
  const x = frames.map((f) => f.t - view.t0);
  const cpu = [x];
  const mem = [x];
  for (const p of procs) {
    const c = [];
    const m = [];
    for (const f of frames) {
      const i = f.pid.indexOf(p.pid);
      c.push(i < 0 ? null : f.cpu[i]);
      // A zombie's RSS reads 0: drawn, it would slope every exited process down to 0 MiB.
      m.push(i < 0 || (f.rss[i] === 0 && f.status?.[i] === "Z") ? null : f.rss[i] / 1024);
    }
    cpu.push(c);
    mem.push(m);
  }
  procCpu.update(series, cpu, xRange);
  procMem.update(series, mem, xRange);
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

export function render(view) {
  showRate();
  if (!view) {
    // No run yet: the machine's cores, live, so the page is alive before the first Run.
    const now = serverNow();
    const frames = store.machineFrames;
    cores && drawCores(frames, now - LIVE_WINDOW_S, [0, LIVE_WINDOW_S]);
    procCpu.update([], [[]], [0, LIVE_WINDOW_S]);
    procMem.update([], [[]], [0, LIVE_WINDOW_S]);
    return;
  }
  const xRange = [view.xMin, view.xMax];
  const frames = visibleFrames(view.frames, view.t0, view.xMin);
  drawCores(frames, view.t0, xRange);
  drawProcs(view, frames, xRange);
}

export { LineChart, coreColour, visibleFrames };
