// The process tree as a table: main → its children, role, start method, state, core, threads,
// CPU and RSS from the latest frame while a process lives, and after it ended its peak CPU, peak
// RSS and how long it lived, then how each process ended.
import { store } from "./store.js";
import { $, el, endBadge, fmtNum, fmtBytesKiB, fmtDuration, stateWord, stateText, procBadge } from "./util.js";
import { phases } from "./phases.js";
import { groupsOf, isOpen, toggle, endingsText, worstEnd } from "./groups.js";

const rows = new Map();   // pid -> <tr>
const groupRows = new Map();   // group id -> <tr>
let shownRun = null;

/** Processes in tree order (depth-first from the roots), each with its depth. */
export function treeOrder(procs) {
  const byPid = new Map(procs.map((p) => [p.pid, p]));
  const kids = new Map();
  const roots = [];
  for (const p of procs) {
    if (p.ppid !== null && byPid.has(p.ppid) && p.ppid !== p.pid) {
      if (!kids.has(p.ppid)) kids.set(p.ppid, []);
      kids.get(p.ppid).push(p);
    } else roots.push(p);
  }
  const order = (a, b) => (a.role === "main" ? -1 : b.role === "main" ? 1 : a.colour - b.colour);
  const out = [];
  const seen = new Set();
  const walk = (p, depth) => {
    if (seen.has(p.pid)) return;
    seen.add(p.pid);
    out.push({ p, depth });
    for (const c of (kids.get(p.pid) || []).sort(order)) walk(c, depth + 1);
  };
  for (const r of roots.sort(order)) walk(r, 0);
  return out;
}

const COLUMNS = ["proc", "role", "method", "state", "cpu", "rss", "core", "threads", "lived", "end"];

function makeRow() {
  const cells = {};
  const tr = el("tr", { "data-testid": "proc-row" });
  for (const name of COLUMNS) {
    const cls = { cpu: "num r", rss: "num r", core: "num r secondary-col", threads: "num r secondary-col", method: "secondary-col", lived: "num r", end: "end-cell" }[name] || "";
    cells[name] = el("td", { class: cls, dataset: { col: name } });
    tr.append(cells[name]);
  }
  tr._cells = cells;
  return tr;
}

function fill(tr, p, depth, sample, peak, phase, view) {
  const c = tr._cells;
  const state = stateWord(p, sample?.status, sample);
  const ended = p.ended_at !== null && p.ended_at !== undefined;
  tr.dataset.pid = p.pid;
  tr.dataset.role = p.role;
  tr.dataset.state = state;
  if (ended) {
    if (p.exitcode !== null && p.exitcode !== undefined) tr.dataset.exitcode = p.exitcode;
    else delete tr.dataset.exitcode;
    if (p.end) tr.dataset.end = p.end;
    else delete tr.dataset.end;
  } else {
    delete tr.dataset.exitcode;
    delete tr.dataset.end;
  }
  if (phase) tr.dataset.phase = phase;
  else delete tr.dataset.phase;
  tr.className = `st-${state}${p.end ? ` end-${p.end}` : ""}`;
  const name = p.name && p.role !== "main" ? el("span", { class: "pname" }, p.name) : null;
  // stacks.js listens for clicks on this action (one listener for all rows)
  const stack = state !== "exited" && store.role === "presenter" ? el("button", { type: "button", class: "row-action",
    "data-testid": "proc-stacks", "data-pid": p.pid, title: "Where is this process? Take the run's stacks" }, "stack") : null;
  c.proc.replaceChildren(...[el("span", { class: "indent", style: { width: `${depth * 1.1}em` } }, depth ? "└ " : ""), procBadge(p), name,
    phase ? el("span", { class: "phase-tag", "data-testid": "proc-phase", title: `started during the run's "${phase}" phase` }, phase) : null, stack].filter(Boolean));
  const tags = [p.role];
  if (p.daemon) tags.push("daemon");
  if (p.orphan) tags.push("orphan");
  c.role.replaceChildren(tags.join(" · "), p.start_method ? el("span", { class: "role-method" }, ` · ${p.start_method}`) : "");
  c.method.textContent = p.start_method || "–";
  const title = sample?.running > 0 && sample.threads > 1 && sample.status !== "R"
    ? "its main thread waits, another of its threads was running at the last sample" : "";
  c.state.replaceChildren(el("span", { class: `state-pill sp-${state}`, title }, ended ? state : stateText(state, sample)));
  // While it lives: the latest reading. After: what it peaked at (an exited process has no
  // current CPU or memory, and "–" everywhere told nothing about what it did).
  if (!ended) {
    c.cpu.textContent = sample ? fmtNum(sample.cpu, 1) : "–";
    c.rss.textContent = sample ? fmtBytesKiB(sample.rss) : "–";
    c.core.textContent = sample ? String(sample.core) : "–";
    c.threads.textContent = sample ? String(sample.threads) : "–";
    c.cpu.title = c.rss.title = "";
  } else {
    c.cpu.textContent = peak ? `▲ ${fmtNum(peak.cpu, 1)}` : "–";
    c.rss.textContent = peak && peak.rss ? `▲ ${fmtBytesKiB(peak.rss)}` : "–";
    c.core.textContent = sample ? String(sample.core) : "–";
    c.threads.textContent = peak ? String(peak.threads) : "–";
    c.cpu.title = "peak CPU % over its life";
    c.rss.title = "peak memory (RSS) over its life";
  }
  const start = p.started_at ?? view.t0;
  const lived = (ended ? p.ended_at : view.tNow) - start;
  c.lived.textContent = Number.isFinite(lived) ? fmtDuration(Math.max(0, lived)) : "–";
  c.lived.title = ended ? "how long it lived" : "alive for";
  const badge = endBadge(p);
  c.end.replaceChildren(badge ? el("span", { class: `end-badge ${badge.cls}`, title: badge.title },
    el("span", { class: "shape", "aria-hidden": "true" }, badge.shape), " ", badge.word) : "");
}

// Readings are folded in as frames arrive (a live run of 256 processes holds 600 frames of 256
// readings: a full pass every draw cost more than the rest of the tree). A shorter or different
// prefix (a replay moved back, another run) starts over.
let folded = { run: null, n: 0, last: null, latest: new Map(), peaks: new Map(), life: new Map() };

/** Each pid's latest sample, its peaks, and its CPU integral (% × s) with its first/last time. */
function readings(view) {
  const frames = view.frames;
  let c = folded;
  if (c.run !== view.rec.id || frames.length < c.n || (c.n && frames[c.n - 1] !== c.last)) {
    c = folded = { run: view.rec.id, n: 0, last: null, latest: new Map(), peaks: new Map(), life: new Map() };
  }
  for (let k = c.n; k < frames.length; k++) {
    const f = frames[k];
    const dt = k ? Math.max(0, f.t - frames[k - 1].t) : 0;
    for (let i = 0; i < f.pid.length; i++) {
      const pid = f.pid[i];
      c.latest.set(pid, { cpu: f.cpu[i], rss: f.rss[i], core: f.core[i], status: f.status[i], threads: f.threads[i], running: f.running?.[i] });
      let pk = c.peaks.get(pid);
      if (!pk) c.peaks.set(pid, (pk = { cpu: 0, rss: 0, threads: 0 }));
      pk.cpu = Math.max(pk.cpu, f.cpu[i] || 0);
      pk.rss = Math.max(pk.rss, f.rss[i] || 0);   // a zombie's 0 never wins
      pk.threads = Math.max(pk.threads, f.threads[i] || 0);
      let lf = c.life.get(pid);
      if (!lf) c.life.set(pid, (lf = { cpuS: 0, first: f.t - dt, last: f.t }));
      lf.cpuS += (f.cpu[i] || 0) * dt;
      lf.last = f.t;
    }
  }
  c.n = frames.length;
  c.last = frames.at(-1) || null;
  return c;
}

/**
 * The workers' CPU added up (% of one core): `now` their latest readings summed (the living
 * ones), `mean` their CPU time over the span from the first one's first sample to the last
 * one's last: 40 workers on 2 cores never read above 200.
 */
function groupCpu(r, members) {
  let now = 0, cpuS = 0, first = Infinity, last = -Infinity;
  for (const p of members) {
    const lf = r.life.get(p.pid);
    if (!lf) continue;
    cpuS += lf.cpuS;
    first = Math.min(first, lf.first);
    last = Math.max(last, lf.last);
    if (p.ended_at === null || p.ended_at === undefined) now += r.latest.get(p.pid)?.cpu || 0;
  }
  return { now, mean: last > first ? cpuS / (last - first) : null };
}

/** The row standing for a pool's workers: count, how they ended, their CPU together. */
function fillGroup(tr, g, members, depth, view, r) {
  const open = isOpen(g.id);
  const alive = members.filter((p) => p.ended_at === null || p.ended_at === undefined).length;
  const cpu = groupCpu(r, members);
  const c = tr._cells;
  tr.dataset.group = g.id;
  tr.dataset.count = members.length;
  tr.dataset.alive = alive;
  tr.dataset.open = open;
  tr.className = "proc-group-row";
  const button = el("button", {
    type: "button", class: "group-toggle", "aria-expanded": String(open), "data-testid": "proc-group-toggle",
    title: open ? "show them as one row" : "show each worker", onclick: () => toggle(g.id),
  }, el("span", { class: "caret", "aria-hidden": "true" }, open ? "▾" : "▸"), ` ${members.length} workers`);
  c.proc.replaceChildren(el("span", { class: "indent", style: { width: `${depth * 1.1}em` } }, depth ? "└ " : ""), button,
    el("span", { class: "pname" }, g.label));
  c.role.textContent = "pool workers";
  c.method.textContent = members[0]?.start_method || "–";
  c.state.replaceChildren(el("span", { class: `state-pill sp-${alive ? "running" : "exited"}` }, alive ? `${alive} alive` : "all exited"));
  // Live: what they use together now; after: their mean over the group's life (% of one core).
  c.cpu.textContent = alive ? `Σ ${fmtNum(cpu.now, 0)}` : `Σ ${fmtNum(cpu.mean, 0)}`;
  c.cpu.title = alive ? "the workers' CPU % added up (100 = one core), last sample" : "the workers' CPU % added up, averaged over their life (100 = one core)";
  c.rss.textContent = "–";
  c.core.textContent = c.threads.textContent = "–";
  const start = Math.min(...members.map((p) => p.started_at ?? view.t0));
  const end = alive ? view.tNow : Math.max(...members.map((p) => p.ended_at));
  c.lived.textContent = fmtDuration(Math.max(0, end - start));
  c.lived.title = "from the first worker's start to the last one's end";
  const worst = worstEnd(members);
  const badge = worst ? endBadge(worst) : null;
  const ends = endingsText(members);
  tr.dataset.ends = ends;
  c.end.replaceChildren(el("span", { class: `end-badge ${badge ? badge.cls : ""}`, "data-testid": "proc-group-ends" },
    badge ? el("span", { class: "shape", "aria-hidden": "true" }, badge.shape) : null, badge ? " " : null, ends));
}

export function render(view) {
  const body = $("proc-rows");
  const runId = view?.rec.id ?? null;
  if (runId !== shownRun) {
    rows.clear();
    groupRows.clear();
    body.replaceChildren();
    shownRun = runId;
  }
  if (!view) return;
  const r = readings(view);
  const { latest, peaks } = r;
  const phaseOf = phases(view);
  const ordered = treeOrder(view.procs);
  const { groups, groupOf } = groupsOf(view);
  const byPid = new Map(view.procs.map((p) => [p.pid, p]));
  // What is shown, in order: a group's row where its first worker was, its workers under it
  // only when it is open.
  const shown = [];
  const placed = new Set();
  for (const o of ordered) {
    const gid = groupOf.get(o.p.pid);
    if (gid === undefined) { shown.push(o); continue; }
    if (!placed.has(gid)) {
      placed.add(gid);
      shown.push({ group: groups.get(gid), depth: o.depth });
    }
    if (isOpen(gid)) shown.push({ ...o, depth: o.depth + 1 });
  }
  const wanted = new Set(shown.filter((o) => o.p).map((o) => o.p.pid));
  for (const [pid, tr] of rows) {
    if (!wanted.has(pid)) {
      tr.remove();
      rows.delete(pid);
    }
  }
  for (const [gid, tr] of groupRows) {
    if (!placed.has(gid)) {
      tr.remove();
      groupRows.delete(gid);
    }
  }
  shown.forEach((o, i) => {
    let tr;
    if (o.group) {
      tr = groupRows.get(o.group.id);
      if (!tr) {
        tr = makeRow();
        tr.setAttribute("data-testid", "proc-group");
        groupRows.set(o.group.id, tr);
      }
      fillGroup(tr, o.group, o.group.pids.map((pid) => byPid.get(pid)), o.depth, view, r);
    } else {
      tr = rows.get(o.p.pid);
      if (!tr) {
        tr = makeRow();
        rows.set(o.p.pid, tr);
      }
      fill(tr, o.p, o.depth, latest.get(o.p.pid), peaks.get(o.p.pid), phaseOf.get(o.p.pid), view);
      tr.classList.toggle("in-group", groupOf.has(o.p.pid));
    }
    if (body.children[i] !== tr) body.insertBefore(tr, body.children[i] || null);
  });
  while (body.children.length > shown.length) body.lastElementChild.remove();
  notePerf(view);
}

function notePerf(view) {
  const perf = store.perf;
  if (!perf.runClickedAt || view.rec.id !== perf.runId) return;
  const now = performance.now();
  if (perf.firstRowMs === null && view.procs.length) perf.firstRowMs = now - perf.runClickedAt;
  if (perf.firstWorkerMs === null && view.procs.some((p) => p.role === "worker")) perf.firstWorkerMs = now - perf.runClickedAt;
}
