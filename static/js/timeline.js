// A Gantt of the run: one lane per process on the shared time axis, its lifetime as a bar, its
// pool tasks as solid segments on the lane, how it ended at the bar's end, phase marks across.
import { $, el, colourOf, inkOn, endBadge, fmtNum } from "./util.js";
import { treeOrder } from "./tree.js";

const MIN_SEG_PCT = 0.35;   // narrower task segments merge with their neighbours (DOM stays small)
let lastKey = null;

function pct(t, view) {
  const span = view.xMax - view.xMin || 1;
  return ((t - view.t0 - view.xMin) / span) * 100;
}

function clampSpan(a, b) {
  const l = Math.max(0, Math.min(100, a));
  const r = Math.max(0, Math.min(100, b));
  return [l, Math.max(0, r - l)];
}

/** Pool task segments per worker pid: [{a, b, msg, detail, open}] from task_start/task_end. */
export function taskSegments(events, tNow) {
  const open = new Map();
  const out = new Map();
  for (const e of events) {
    if (e.kind !== "task_start" && e.kind !== "task_end") continue;
    const key = `${e.pid}|${e.channel}|${e.msg}`;
    if (e.kind === "task_start") open.set(key, e);
    else {
      const s = open.get(key);
      open.delete(key);
      if (!out.has(e.pid)) out.set(e.pid, []);
      out.get(e.pid).push({ a: s ? s.t : e.t, b: e.t, msg: e.msg, detail: s?.detail ?? e.detail, open: false });
    }
  }
  for (const s of open.values()) {
    if (!out.has(s.pid)) out.set(s.pid, []);
    out.get(s.pid).push({ a: s.t, b: tNow, msg: s.msg, detail: s.detail, open: true });
  }
  return out;
}

function merged(segs, view) {
  const res = [];
  for (const s of segs.sort((x, y) => x.a - y.a)) {
    const [l, w] = clampSpan(pct(s.a, view), pct(s.b, view));
    if (w <= 0 && (l <= 0 || l >= 100)) continue;
    const prev = res[res.length - 1];
    if (prev && (w < MIN_SEG_PCT || prev.w < MIN_SEG_PCT) && l - (prev.l + prev.w) < MIN_SEG_PCT) {
      prev.w = Math.max(prev.w, l + w - prev.l);
      prev.n += 1;
      prev.open = prev.open || s.open;
    } else res.push({ l, w, n: 1, s, open: s.open });
  }
  return res;
}

function ticks(view) {
  const span = view.xMax - view.xMin;
  const steps = [0.1, 0.2, 0.5, 1, 2, 5, 10, 15, 30, 60, 120, 300];
  const step = steps.find((s) => span / s <= 6) || 600;
  const out = [];
  for (let t = Math.ceil(view.xMin / step) * step; t <= view.xMax + 1e-9; t += step) out.push(t);
  return out.map((t) => el("span", { class: `tick num${(t - view.xMin) / (span || 1) > 0.97 ? " last" : ""}`, style: { left: `${((t - view.xMin) / (span || 1)) * 100}%` } },
    `${fmtNum(t, step < 1 ? 1 : 0)} s`));
}

export function render(view) {
  const box = $("timeline");
  if (!view) {
    if (lastKey !== null) box.replaceChildren(el("p", { class: "empty" }, "Press Run: each process gets a lane here."));
    lastKey = null;
    if (!box.children.length) box.replaceChildren(el("p", { class: "empty" }, "Press Run: each process gets a lane here."));
    return;
  }
  if (view.key === lastKey) return;
  lastKey = view.key;
  const tasks = taskSegments(view.events, view.tNow);
  const rem = parseFloat(getComputedStyle(document.documentElement).fontSize) || 15;
  const trackPx = Math.max(100, box.clientWidth - 21.5 * rem);
  const fits = (w, text) => {
    const chars = Math.floor(((w / 100) * trackPx) / (0.62 * 0.68 * rem)) - 1;
    if (chars < 2 || !text) return "";
    return text.length <= chars ? text : `${text.slice(0, Math.max(1, chars - 1))}…`;
  };
  const lanes = treeOrder(view.procs).map(({ p, depth }) => {
    const { colour, dash } = colourOf(p.colour);
    const start = p.started_at ?? view.t0;
    const end = p.ended_at ?? view.tNow;
    const [l, w] = clampSpan(pct(start, view), pct(end, view));
    const track = el("div", { class: "tl-track" });
    track.append(el("div", {
      class: `tl-life${dash ? " dashed" : ""}${p.ended_at ? "" : " alive"}`,
      style: { left: `${l}%`, width: `${Math.max(w, 0.3)}%`, background: colour, borderColor: colour },
    }));
    for (const seg of merged(tasks.get(p.pid) || [], view)) {
      const label = seg.n > 1 ? `${seg.n} tasks` : `task ${seg.s.msg ?? ""}${seg.s.detail ? ` (${seg.s.detail})` : ""}`;
      track.append(el("div", {
        class: `tl-task${seg.open ? " open" : ""}`, "data-testid": "timeline-task", title: label,
        style: { left: `${seg.l}%`, width: `${Math.max(seg.w, 0.25)}%`, background: colour, color: inkOn(colour) },
      }, seg.n === 1 ? fits(seg.w, seg.s.detail ? String(seg.s.detail) : "") : fits(seg.w, `${seg.n} tasks`)));
    }
    const badge = endBadge(p);
    if (badge && l + w < 97) {
      // The shape sits where the process ended; the words line up in the column on the right.
      track.append(el("span", { class: `tl-end-mark ${badge.cls}`, "aria-hidden": "true", style: { left: `${l + w}%` } }, badge.shape));
    }
    const endCell = el("div", { class: "tl-endcol" }, badge ? el("span", {
      class: `end-badge ${badge.cls}`, "data-testid": "timeline-exit", "data-pid": p.pid, title: badge.title,
    }, el("span", { class: "shape", "aria-hidden": "true" }, badge.shape), " ", badge.word) : (view.replaying || view.live ? el("span", { class: "sub" }, "alive") : null));
    const tags = [p.role];
    if (p.daemon) tags.push("daemon");
    return el("div", { class: `tl-lane${p.ended_at ? " ended" : ""}`, "data-pid": p.pid },
      el("div", { class: "tl-label", style: { paddingLeft: `${Math.min(depth, 3) * 0.5}em` } },
        el("span", { class: `pid-chip${dash ? " dashed" : ""}`, style: { background: colour, color: inkOn(colour) } }, String(p.pid)),
        el("span", { class: "tl-role" }, tags[0], tags[1] ? el("small", {}, ` ${tags[1]}`) : null)),
      track, endCell);
  });
  const marks = [];
  // ctx.untraced() brackets a timing-sensitive stretch with the marks "untraced" and "traced":
  // words about the dashboard, not the lesson, so they become a shaded band with a note.
  let quietFrom = null;
  let quiet = false;
  const band = (a, b) => {
    const [l, w] = clampSpan(pct(a, view), pct(b, view));
    if (w > 0) marks.push(el("div", { class: "tl-untraced", "data-testid": "untraced-band", style: { left: `${l}%`, width: `${w}%` } }));
    quiet = true;
  };
  for (const e of view.events) {
    if (e.kind !== "mark") continue;
    if (e.detail === "untraced") { quietFrom = e.t; continue; }
    if (e.detail === "traced") {
      if (quietFrom !== null) band(quietFrom, e.t);
      quietFrom = null;
      continue;
    }
    const x = pct(e.t, view);
    if (x < 0 || x > 100) continue;
    marks.push(el("div", { class: "tl-mark", style: { left: `${x}%` }, title: e.detail || "" },
      el("span", {}, String(e.detail ?? e.msg ?? "").slice(0, 40))));
  }
  if (quietFrom !== null) band(quietFrom, view.t0 + view.xMax);
  box.replaceChildren(...[
    el("div", { class: `tl-grid${marks.length ? " has-marks" : ""}` },
      el("div", { class: "tl-marks" }, ...marks),
      ...lanes,
      el("div", { class: "tl-axis" }, el("div", { class: "tl-label" }), el("div", { class: "tl-ticks" }, ...ticks(view)), el("div", {}))),
    quiet ? el("p", { class: "tl-note" }, "Shaded: timed without tracing, so that recording messages would not change the timing; its queue, pipe and shared-memory traffic is not shown.") : null].filter(Boolean));
}
