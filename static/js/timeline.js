// A Gantt of the run: one lane per process on the shared time axis, its lifetime as a bar, its
// pool tasks as solid segments on the lane, how it ended at the bar's end, phase marks across.
import { $, el, colourOf, inkOn, endBadge, fmtNum, procBadge, roundStep } from "./util.js";
import { treeOrder } from "./tree.js";
import { phases } from "./phases.js";
import { groupsOf, isOpen, toggle, openKey, endingsText, worstEnd } from "./groups.js";

const MIN_TASK_REM = 1.9;   // a task block is at least this wide, so a 1 µs task can be seen and
                            // counted; blocks that would overlap at that width merge into one
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

// Task events are folded in as they arrive (a busy pool sends thousands; a full pass every
// draw cost more than drawing): ended tasks kept per pid, the open ones by key. A shorter or
// different prefix (a replay moved back, another run) starts over.
let folded = { run: null, n: 0, last: null, open: new Map(), done: new Map() };

/** Pool task segments per worker pid: [{a, b, msg, detail, open}] from task_start/task_end. */
export function taskSegments(view) {
  const events = view.events;
  let c = folded;
  if (c.run !== view.rec.id || events.length < c.n || (c.n && events[c.n - 1] !== c.last)) {
    c = folded = { run: view.rec.id, n: 0, last: null, open: new Map(), done: new Map() };
  }
  for (let k = c.n; k < events.length; k++) {
    const e = events[k];
    if (e.kind !== "task_start" && e.kind !== "task_end") continue;
    const key = `${e.pid}|${e.channel}|${e.msg}`;
    if (e.kind === "task_start") c.open.set(key, e);
    else {
      const st = c.open.get(key);
      c.open.delete(key);
      if (!c.done.has(e.pid)) c.done.set(e.pid, []);
      c.done.get(e.pid).push({ a: st ? st.t : e.t, b: e.t, msg: e.msg, detail: st?.detail ?? e.detail, open: false });
    }
  }
  c.n = events.length;
  c.last = events.at(-1) || null;
  const out = new Map([...c.done].map(([pid, segs]) => [pid, segs.slice()]));
  for (const st of c.open.values()) {
    if (!out.has(st.pid)) out.set(st.pid, []);
    out.get(st.pid).push({ a: st.t, b: view.tNow, msg: st.msg, detail: st.detail, open: true });
  }
  return out;
}

/**
 * A group lane's tasks: the track cut in BINS columns, a column solid when any worker ran a
 * task in it. Linear in the tasks (no sort), so 255 workers' thousands of tasks stay cheap.
 */
const BINS = 240;
function busyRuns(segs, view) {
  const busy = new Uint8Array(BINS);
  const count = new Uint32Array(BINS);
  for (const sg of segs) {
    const l = Math.floor((Math.max(0, Math.min(100, pct(sg.a, view))) / 100) * BINS);
    const r = Math.ceil((Math.max(0, Math.min(100, pct(sg.b, view))) / 100) * BINS);
    if (pct(sg.b, view) < 0 || pct(sg.a, view) > 100) continue;
    for (let i = l; i < Math.max(l + 1, r) && i < BINS; i++) busy[i] = 1;
    count[Math.min(BINS - 1, l)] += 1;
  }
  const runs = [];
  for (let i = 0; i < BINS; i++) {
    if (!busy[i]) continue;
    let j = i, n = 0;
    while (j < BINS && busy[j]) n += count[j++];
    runs.push({ l: (i / BINS) * 100, w: ((j - i) / BINS) * 100, n });
    i = j;
  }
  return runs;
}

/** Which items a task ran, from its detail: "square over [1, 2]" -> "1, 2", "f(3)" -> "3". */
export function taskItems(detail) {
  const text = String(detail ?? "");
  const over = / over \[(.*)\]$/.exec(text);
  if (over) return over[1];
  const call = /^[\w.<>]+\((.*)\)$/.exec(text);
  return call ? call[1] : text;
}

function merged(segs, view, minPct) {
  const res = [];
  for (const s of segs.sort((x, y) => x.a - y.a)) {
    const [l, w] = clampSpan(pct(s.a, view), pct(s.b, view));
    if (w <= 0 && (l <= 0 || l >= 100)) continue;
    const prev = res[res.length - 1];
    if (prev && l < prev.l + Math.max(prev.w, minPct)) {
      prev.w = Math.max(prev.w, l + w - prev.l);
      prev.segs.push(s);
      prev.open = prev.open || s.open;
    } else res.push({ l, w, segs: [s], open: s.open });
  }
  for (const r of res) r.w = Math.min(Math.max(r.w, minPct), 100 - r.l);
  return res;
}

function ticks(view) {
  const span = view.xMax - view.xMin;
  const { step, decimals } = roundStep(span, 6);
  const out = [];
  for (let k = Math.ceil(view.xMin / step - 1e-9); k * step <= view.xMax + 1e-9; k++) out.push(k * step);
  return out.map((t) => el("span", { class: `tick num${(t - view.xMin) / (span || 1) > 0.97 ? " last" : ""}`, style: { left: `${((t - view.xMin) / (span || 1)) * 100}%` } },
    `${fmtNum(t, decimals)} s`));
}

export function render(view) {
  const box = $("timeline");
  if (!view) {
    if (lastKey !== null) box.replaceChildren(el("p", { class: "empty" }, "Press Run: each process gets a lane here."));
    lastKey = null;
    if (!box.children.length) box.replaceChildren(el("p", { class: "empty" }, "Press Run: each process gets a lane here."));
    return;
  }
  const key = `${view.key}|${openKey()}`;
  if (key === lastKey) return;
  lastKey = key;
  const tasks = taskSegments(view);
  const rem = parseFloat(getComputedStyle(document.documentElement).fontSize) || 15;
  const trackPx = Math.max(100, box.clientWidth - 21.5 * rem);
  const fits = (w, text) => {
    const chars = Math.floor(((w / 100) * trackPx) / (0.62 * 0.68 * rem)) - 1;
    if (chars < 1 || !text) return "";
    return text.length <= chars ? text : chars < 3 ? "" : `${text.slice(0, Math.max(1, chars - 1))}…`;
  };
  const minPct = ((MIN_TASK_REM * rem) / trackPx) * 100;
  const phaseOf = phases(view);
  const lane = ({ p, depth }) => {
    const { colour, dash } = colourOf(p.colour);
    const start = p.started_at ?? view.t0;
    const end = p.ended_at ?? view.tNow;
    const [l, w] = clampSpan(pct(start, view), pct(end, view));
    const track = el("div", { class: "tl-track" });
    track.append(el("div", {
      class: `tl-life${dash ? " dashed" : ""}${p.ended_at ? "" : " alive"}`,
      style: { left: `${l}%`, width: `${Math.max(w, 0.3)}%`, background: colour, borderColor: colour },
    }));
    for (const seg of merged(tasks.get(p.pid) || [], view, minPct)) {
      // Labelled by the items it ran (what a newcomer can check against the input list).
      const items = seg.segs.map((s) => taskItems(s.detail)).join(" | ");
      const n = seg.segs.length;
      const title = n > 1 ? `${n} tasks: ${seg.segs.map((s) => s.detail ?? s.msg).join("; ")}` : `task ${seg.segs[0].msg ?? ""}${seg.segs[0].detail ? ` (${seg.segs[0].detail})` : ""}`;
      track.append(el("div", {
        class: `tl-task${seg.open ? " open" : ""}${n > 1 ? " many" : ""}`, "data-testid": "timeline-task", title,
        "data-items": items, "data-tasks": n, "aria-label": n > 1 ? `${n} tasks, items ${items}` : `task, items ${items}`,
        style: { left: `${seg.l}%`, width: `${seg.w}%`, background: colour, color: inkOn(colour) },
      }, fits(seg.w, n > 1 ? (fits(seg.w, items) || `${n}×`) : items)));
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
    const phase = phaseOf.get(p.pid);
    if (phase) tags.push(phase);
    return el("div", { class: `tl-lane${p.ended_at ? " ended" : ""}`, "data-pid": p.pid },
      el("div", { class: "tl-label", style: { paddingLeft: `${Math.min(depth, 3) * 0.5}em` } },
        procBadge(p),
        el("span", { class: "tl-role" }, tags[0], tags.length > 1 ? el("small", {}, ` ${tags.slice(1).join(" · ")}`) : null)),
      track, endCell);
  };
  // A pool's workers as one lane: from its first start to its last end, every task of every
  // worker on it (merged where they overlap: how busy the pool was, across time).
  const groupLane = (g, depth) => {
    const members = g.pids.map((pid) => byPid.get(pid));
    const start = Math.min(...members.map((p) => p.started_at ?? view.t0));
    const alive = members.some((p) => p.ended_at === null || p.ended_at === undefined);
    const end = alive ? view.tNow : Math.max(...members.map((p) => p.ended_at));
    const [l, w] = clampSpan(pct(start, view), pct(end, view));
    const track = el("div", { class: "tl-track" }, el("div", { class: `tl-life group${alive ? " alive" : ""}`, style: { left: `${l}%`, width: `${Math.max(w, 0.3)}%` } }));
    const all = members.flatMap((p) => tasks.get(p.pid) || []);
    for (const run of busyRuns(all, view)) {
      track.append(el("div", { class: "tl-task group", "data-testid": "timeline-group-task", "data-tasks": run.n,
        title: `${run.n} task${run.n === 1 ? "" : "s"} of ${g.label} started here`, style: { left: `${run.l}%`, width: `${run.w}%` } }));
    }
    const open = isOpen(g.id);
    const worst = worstEnd(members);
    const badge = worst ? endBadge(worst) : null;
    const ends = endingsText(members);
    return el("div", { class: "tl-lane tl-group", "data-testid": "proc-group", "data-group": g.id, "data-count": members.length, "data-ends": ends, "data-open": String(open) },
      el("div", { class: "tl-label", style: { paddingLeft: `${Math.min(depth, 3) * 0.5}em` } },
        el("button", { type: "button", class: "group-toggle", "aria-expanded": String(open), "data-testid": "proc-group-toggle", onclick: () => toggle(g.id) },
          el("span", { class: "caret", "aria-hidden": "true" }, open ? "▾" : "▸"), ` ${members.length} workers`),
        el("span", { class: "tl-role" }, el("small", {}, g.label))),
      track,
      el("div", { class: "tl-endcol", title: ends }, el("span", { class: `end-badge ${badge ? badge.cls : ""}` },
        badge ? el("span", { class: "shape", "aria-hidden": "true" }, badge.shape) : null, badge ? " " : null, ends)));
  };
  const { groups, groupOf } = groupsOf(view);
  const byPid = new Map(view.procs.map((p) => [p.pid, p]));
  const placed = new Set();
  const lanes = [];
  for (const o of treeOrder(view.procs)) {
    const gid = groupOf.get(o.p.pid);
    if (gid === undefined) { lanes.push(lane(o)); continue; }
    if (!placed.has(gid)) {
      placed.add(gid);
      lanes.push(groupLane(groups.get(gid), o.depth));
    }
    if (isOpen(gid)) lanes.push(lane({ ...o, depth: o.depth + 1 }));
  }
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
