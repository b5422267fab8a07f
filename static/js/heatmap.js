// CPU per process as a heatmap: one row per process (tree order), time across on the charts'
// shared axis, colour = CPU % (100 = one core). Past a dozen processes, lines tangle; a row per
// process keeps every one visible at a glance. Painted through an ImageData one pixel per row and
// scaled up without smoothing: cost grows with width × processes, never with frames × processes.
import { isDark, el, fmtNum } from "./util.js";

// Sequential, one hue getting darker (light theme) or brighter (dark theme): order reads without
// colour vision, and an idle process (0 %) stays distinct from "not alive" (no paint at all).
const RAMPS = {
  light: ["#e8eef5", "#a6cbe3", "#4a98c9", "#1763aa", "#08306b"],
  dark: ["#232b38", "#31688e", "#35b779", "#90d743", "#fde725"],
};
const MAX_ROWS_PX = 240;   // the canvas never grows taller than this (256 processes: 1 px a row)

function hexRgb(h) {
  return [1, 3, 5].map((k) => parseInt(h.slice(k, k + 2), 16));
}

/** 101 packed colours (ABGR for a little-endian Uint32 view), one per whole CPU %. */
function lut(dark) {
  const stops = RAMPS[dark ? "dark" : "light"].map(hexRgb);
  const out = new Uint32Array(101);
  for (let v = 0; v <= 100; v++) {
    const pos = (v / 100) * (stops.length - 1);
    const i = Math.min(stops.length - 2, Math.floor(pos));
    const f = pos - i;
    const [r, g, b] = stops[i].map((c, k) => Math.round(c + (stops[i + 1][k] - c) * f));
    out[v] = (255 << 24) | (b << 16) | (g << 8) | r;
  }
  return out;
}

export class Heatmap {
  constructor(host) {
    this.host = host;
    this.canvas = el("canvas", { class: "heatmap-canvas", "data-testid": "chart-proc-heatmap", role: "img" });
    this.scale = el("div", { class: "heatmap-scale", "aria-hidden": "true" },
      el("span", { class: "num" }, "0 %"), el("span", { class: "heatmap-ramp" }), el("span", { class: "num" }, "100 % (one core)"));
    host.replaceChildren(this.canvas, this.scale);
    this.rows = [];
    this.xRange = [0, 1];
    this.t0 = 0;
    this.canvas.addEventListener("mousemove", (e) => this.point(e));
    this.image = null;
  }

  /** Plot area in CSS px, aligned with the uPlot charts above it (same left axis gutter). */
  geometry() {
    const width = Math.max(100, this.box?.width || this.host.clientWidth);
    const rowPx = Math.max(1, Math.min(8, Math.floor(MAX_ROWS_PX / Math.max(1, this.rows.length))));
    return { width, rowPx, height: Math.max(rowPx, rowPx * this.rows.length) };
  }

  /**
   * rows: [{pid, label}] top to bottom; frames: the visible frames ({t, pid[], cpu[]}), t0: the
   * run's start (epoch s), xRange: [min, max] s since t0, as on the other charts.
   */
  draw(rows, frames, t0, xRange, box = null, slotsOf = null) {
    this.box = box;   // {left, width} of the line charts' plot area, so time lines up across
    this.rows = rows;
    this.frames = frames;
    this.t0 = t0;
    this.xRange = xRange;
    const { width, rowPx, height } = this.geometry();
    const dpr = window.devicePixelRatio || 1;
    const cw = Math.round(width * dpr);
    if (this.canvas.width !== cw || this.canvas.height !== Math.round(height * dpr)) {
      this.canvas.width = cw;
      this.canvas.height = Math.round(height * dpr);
    }
    this.canvas.style.height = `${height}px`;
    this.canvas.style.width = `${width}px`;
    this.canvas.style.marginLeft = `${box?.left || 0}px`;
    this.scale.style.marginLeft = `${box?.left || 0}px`;
    this.canvas.dataset.rows = rows.length;
    this.canvas.setAttribute("aria-label", `CPU % of ${rows.length} processes over time, one row each`);
    const n = rows.length;
    if (!n) return;
    // One image pixel per row and per device pixel of width; drawn scaled to rowPx tall.
    const w = cw;
    if (!this.image || this.image.width !== w || this.image.height !== n) this.image = new ImageData(w, n);
    const px = new Uint32Array(this.image.data.buffer);
    px.fill(0);
    const dark = isDark();
    if (this.dark !== dark) { this.lut = lut(dark); this.dark = dark; }
    const colours = this.lut;
    // Row of each reading: by its slot (a small integer per pid, see charts.js) when given.
    const slotRow = new Int32Array(Math.max(1, ...rows.map((r) => (r.slot ?? -1) + 1))).fill(-1);
    rows.forEach((r, i) => { if (r.slot !== undefined) slotRow[r.slot] = i; });
    const rowOf = new Map(rows.map((r, i) => [r.pid, i]));
    const [xMin, xMax] = xRange;
    const span = xMax - xMin || 1;
    const col = (t) => Math.round(((t - t0 - xMin) / span) * w);
    // A CPU % is the average since the previous sample: it paints the interval that ends at its
    // frame, as the line charts' steps do.
    for (let k = 1; k < frames.length; k++) {
      const f = frames[k];
      const a = Math.max(0, col(frames[k - 1].t));
      const b = Math.min(w, Math.max(a + 1, col(f.t)));
      if (b <= 0 || a >= w) continue;
      const slots = slotsOf ? slotsOf(f) : null;
      for (let i = 0; i < f.pid.length; i++) {
        const r = slots ? (slots[i] < slotRow.length ? slotRow[slots[i]] : -1) : (rowOf.get(f.pid[i]) ?? -1);
        if (r < 0) continue;
        const v = f.cpu[i] || 0;
        const c = colours[v <= 0 ? 0 : v >= 100 ? 100 : Math.round(v)];
        for (let x = r * w + a, end = r * w + b; x < end; x++) px[x] = c;
      }
    }
    const ctx = this.canvas.getContext("2d");
    ctx.clearRect(0, 0, this.canvas.width, this.canvas.height);
    ctx.imageSmoothingEnabled = false;
    this.bitmapSource ||= new OffscreenCanvas(w, n);
    if (this.bitmapSource.width !== w || this.bitmapSource.height !== n) {
      this.bitmapSource.width = w;
      this.bitmapSource.height = n;
    }
    this.bitmapSource.getContext("2d").putImageData(this.image, 0, 0);
    ctx.drawImage(this.bitmapSource, 0, 0, w, n, 0, 0, this.canvas.width, this.canvas.height);
    this.scale.querySelector(".heatmap-ramp").dataset.theme = isDark() ? "dark" : "light";
  }

  /** What the pointer is on: which process, when, how busy (the canvas's title). */
  point(e) {
    const rect = this.canvas.getBoundingClientRect();
    const { rowPx } = this.geometry();
    const row = this.rows[Math.floor((e.clientY - rect.top) / rowPx)];
    if (!row) return;
    const [xMin, xMax] = this.xRange;
    const t = this.t0 + xMin + ((e.clientX - rect.left) / rect.width) * (xMax - xMin);
    const f = this.frames.find((fr) => fr.t >= t);
    const i = f ? f.pid.indexOf(row.pid) : -1;
    this.canvas.title = `${row.label} at ${fmtNum(t - this.t0, 2)} s: ${i < 0 ? "not alive or not sampled" : `${fmtNum(f.cpu[i], 0)} % CPU`}`;
  }

  /** The colour painted for a value (tests read the canvas against it). */
  static colourOf(value, dark = isDark()) {
    const c = lut(dark)[Math.max(0, Math.min(100, Math.round(value)))];
    return [c & 255, (c >> 8) & 255, (c >> 16) & 255];
  }
}
