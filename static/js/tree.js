// The process tree as a table: main → its children, role, start method, state, core, threads,
// CPU and RSS from the latest frame, and how each process ended.
import { store } from "./store.js";
import { $, el, colourOf, inkOn, endBadge, fmtNum, fmtBytesKiB, stateWord } from "./util.js";

const rows = new Map();   // pid -> <tr>
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

function makeRow() {
  const cells = {};
  const tr = el("tr", { "data-testid": "proc-row" });
  for (const name of ["proc", "role", "method", "state", "cpu", "rss", "core", "threads", "end"]) {
    const cls = { cpu: "num r", rss: "num r", core: "num r secondary-col", threads: "num r secondary-col", method: "secondary-col" }[name] || "";
    cells[name] = el("td", { class: cls });
    tr.append(cells[name]);
  }
  tr._cells = cells;
  return tr;
}

function fill(tr, p, depth, sample) {
  const c = tr._cells;
  const { colour, dash } = colourOf(p.colour);
  const state = stateWord(p, sample?.status);
  tr.dataset.pid = p.pid;
  tr.dataset.role = p.role;
  tr.dataset.state = state;
  if (p.ended_at !== null && p.ended_at !== undefined) {
    if (p.exitcode !== null && p.exitcode !== undefined) tr.dataset.exitcode = p.exitcode;
    else delete tr.dataset.exitcode;
    if (p.end) tr.dataset.end = p.end;
    else delete tr.dataset.end;
  } else {
    delete tr.dataset.exitcode;
    delete tr.dataset.end;
  }
  tr.className = `st-${state}${p.end ? ` end-${p.end}` : ""}`;
  const chip = el("span", { class: `pid-chip${dash ? " dashed" : ""}`, style: { background: colour, color: inkOn(colour) } }, String(p.pid));
  const name = p.name && p.role !== "main" ? el("span", { class: "pname" }, p.name) : null;
  // stacks.js listens for clicks on this action (one listener for all rows)
  const stack = state !== "exited" && store.role === "presenter" ? el("button", { type: "button", class: "row-action",
    "data-testid": "proc-stacks", "data-pid": p.pid, title: "Where is this process? Take the run's stacks" }, "stack") : null;
  c.proc.replaceChildren(...[el("span", { class: "indent", style: { width: `${depth * 1.1}em` } }, depth ? "└ " : ""), chip, name, stack].filter(Boolean));
  const tags = [p.role];
  if (p.daemon) tags.push("daemon");
  if (p.orphan) tags.push("orphan");
  c.role.textContent = tags.join(" · ");
  c.method.textContent = p.start_method || "–";
  c.state.replaceChildren(el("span", { class: `state-pill sp-${state}` }, state));
  c.cpu.textContent = sample && state !== "exited" ? fmtNum(sample.cpu, 1) : "–";
  c.rss.textContent = sample && state !== "exited" ? fmtBytesKiB(sample.rss) : "–";
  c.core.textContent = sample && state !== "exited" ? String(sample.core) : "–";
  c.threads.textContent = sample && state !== "exited" ? String(sample.threads) : "–";
  const badge = endBadge(p);
  c.end.replaceChildren(badge ? el("span", { class: `end-badge ${badge.cls}`, title: badge.title },
    el("span", { class: "shape", "aria-hidden": "true" }, badge.shape), " ", badge.word) : "");
}

/** Each pid's latest sample: the last frame it appears in. */
function latestSamples(frames) {
  const out = new Map();
  for (let k = frames.length - 1; k >= 0 && k >= frames.length - 50; k--) {
    const f = frames[k];
    for (let i = 0; i < f.pid.length; i++) {
      if (!out.has(f.pid[i])) {
        out.set(f.pid[i], { cpu: f.cpu[i], rss: f.rss[i], core: f.core[i], status: f.status[i], threads: f.threads[i] });
      }
    }
  }
  return out;
}

export function render(view) {
  const body = $("proc-rows");
  const runId = view?.rec.id ?? null;
  if (runId !== shownRun) {
    rows.clear();
    body.replaceChildren();
    shownRun = runId;
  }
  if (!view) return;
  const samples = latestSamples(view.frames);
  const ordered = treeOrder(view.procs);
  const wanted = new Set(ordered.map((o) => o.p.pid));
  for (const [pid, tr] of rows) {
    if (!wanted.has(pid)) {
      tr.remove();
      rows.delete(pid);
    }
  }
  ordered.forEach(({ p, depth }, i) => {
    let tr = rows.get(p.pid);
    if (!tr) {
      tr = makeRow();
      rows.set(p.pid, tr);
    }
    fill(tr, p, depth, samples.get(p.pid));
    if (body.children[i] !== tr) body.insertBefore(tr, body.children[i] || null);
  });
  notePerf(view);
}

function notePerf(view) {
  const perf = store.perf;
  if (!perf.runClickedAt || view.rec.id !== perf.runId) return;
  const now = performance.now();
  if (perf.firstRowMs === null && view.procs.length) perf.firstRowMs = now - perf.runClickedAt;
  if (perf.firstWorkerMs === null && view.procs.some((p) => p.role === "worker")) perf.firstWorkerMs = now - perf.runClickedAt;
}
