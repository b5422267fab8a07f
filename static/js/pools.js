// The pool panel: for each pool of the run (its `pools`, computed by the server: so far while
// the run is live, about once a second, and finally at its end), how its workers spent the
// pool's life: a bar per worker, running tasks (solid) vs idle (waiting for work, passing
// messages, starting up), with the task times and the slowest tasks.
// The question it answers: was the pool a good idea, and did every worker pull its weight?
import { $, el, fmtNum, procBadge } from "./util.js";
import { isLive } from "./store.js";

let lastKey = null;
let lastRun = null;

function ms(s) {
  if (s === null || s === undefined) return "–";
  return s < 1 ? `${fmtNum(s * 1000, s < 0.01 ? 2 : 1)} ms` : `${fmtNum(s, 2)} s`;
}

function plural(n, word) {
  return `${n} ${word}${n === 1 ? "" : "s"}`;
}

function workerRow(w, procOf, longest) {
  const total = (w.busy_s || 0) + (w.idle_s || 0);
  // Bars share one scale (the longest worker's time), so a worker that lived less looks shorter.
  const scale = longest > 0 ? 100 / longest : 0;
  const busyPct = (w.busy_s || 0) * scale;
  const idlePct = (w.idle_s || 0) * scale;
  // A share of the worker's own time: 0-100 % whatever the numbers (a live pool's are partial).
  const share = total > 0 ? Math.min(100, (100 * (w.busy_s || 0)) / total) : 0;
  const who = w.thread ? `${w.pid}/${w.thread}` : null;
  return el("div", {
    class: "pool-worker", "data-testid": "pool-worker", "data-pid": w.pid, "data-tasks": w.tasks,
    "data-busy": w.busy_s, "data-idle": w.idle_s,
    title: `${w.pid}${who ? ` thread ${w.thread}` : ""}: ${plural(w.tasks, "task")}, ${ms(w.busy_s)} running them, ${ms(w.idle_s)} idle (${fmtNum(share, 0)} % busy)`,
  },
  procBadge(procOf.get(w.pid), w.pid),
  el("span", { class: "pool-bar", "aria-hidden": "true" },
    el("span", { class: "pool-busy", "data-testid": "pool-busy", style: { width: `${busyPct}%` } }),
    el("span", { class: "pool-idle", style: { width: `${idlePct}%` } })),
  el("span", { class: "num pool-n" }, `${w.tasks} · ${fmtNum(share, 0)} %`));
}

function poolBlock(pool, procOf, live) {
  const workers = pool.workers || [];
  const longest = Math.max(0, ...workers.map((w) => (w.busy_s || 0) + (w.idle_s || 0)));
  const t = pool.task_s || {};
  const facts = [
    `${plural(pool.tasks ?? 0, "task")} on ${plural(workers.length, "worker")}`,
    pool.busy !== null && pool.busy !== undefined ? `busy ${fmtNum(pool.busy * 100, 0)} %` : null,
    pool.cpu !== null && pool.cpu !== undefined ? `CPU ${fmtNum(pool.cpu, 0)} % a worker` : null,
    `a task: p50 ${ms(t.p50)}, p95 ${ms(t.p95)}, max ${ms(t.max)}`,
    pool.dispatch_s !== null && pool.dispatch_s !== undefined ? `between tasks ${ms(pool.dispatch_s)}` : null,
    live ? "so far (still running)" : null,
  ].filter(Boolean);
  const slowest = (pool.slowest || []).map((s) => el("li", {},
    el("span", { class: "num" }, ms(s.seconds)), " on ", procBadge(procOf.get(s.pid), s.pid), " ", el("code", {}, s.detail || "")));
  return el("div", { class: "pool", "data-testid": "pool", "data-pool": pool.id, "data-kind": pool.kind },
    el("h3", {}, `${pool.id}`, el("span", { class: "sub" }, ` ${pool.kind} · ${facts.join(" · ")}`)),
    el("div", { class: "pool-key sub", "aria-hidden": "true" },
      el("span", { class: "pool-busy key" }), " running tasks ", el("span", { class: "pool-idle key" }), " idle (waiting, messages, start-up) · tasks · % busy"),
    el("div", { class: "pool-workers" }, ...workers.map((w) => workerRow(w, procOf, longest))),
    slowest.length ? el("div", { class: "pool-slowest" }, el("span", { class: "sub" }, "slowest tasks"), el("ol", {}, ...slowest)) : null);
}

// The nodes a pool or a worker keeps across updates: same element, same pool / pid.
function sameNode(a, b) {
  if (a.nodeType !== b.nodeType || a.nodeName !== b.nodeName) return false;
  if (a.nodeType !== Node.ELEMENT_NODE) return true;
  return a.getAttribute("data-pool") === b.getAttribute("data-pool")
    && a.getAttribute("data-pid") === b.getAttribute("data-pid");
}

function keyOf(node) {
  return node.nodeType === Node.ELEMENT_NODE && (node.hasAttribute("data-pool") || node.hasAttribute("data-pid"))
    ? `${node.nodeName}|${node.getAttribute("data-pool")}|${node.getAttribute("data-pid")}` : null;
}

// Bring `old` to what `next` shows, keeping the nodes that stay (a live pool's panel changes
// every second: rebuilt, its bars would jump and a tooltip being read would vanish). Styles go
// through the CSSOM: the strict CSP refuses a style attribute set by setAttribute.
function morph(old, next) {
  if (old.nodeType !== Node.ELEMENT_NODE) {
    if (old.nodeValue !== next.nodeValue) old.nodeValue = next.nodeValue;
    return;
  }
  for (const { name } of [...old.attributes]) {
    if (name !== "style" && !next.hasAttribute(name)) old.removeAttribute(name);
  }
  for (const { name, value } of [...next.attributes]) {
    if (name !== "style" && old.getAttribute(name) !== value) old.setAttribute(name, value);
  }
  for (const prop of [...old.style]) if (!next.style.getPropertyValue(prop)) old.style.removeProperty(prop);
  for (const prop of [...next.style]) {
    const value = next.style.getPropertyValue(prop);
    if (old.style.getPropertyValue(prop) !== value) old.style.setProperty(prop, value);
  }
  morphChildren(old, next);
}

function morphChildren(old, next) {
  // A ThreadPool's workers share a pid: each key keeps its nodes in order, used once each.
  const keyed = new Map();
  for (const child of old.childNodes) {
    const key = keyOf(child);
    if (key === null) continue;
    if (!keyed.has(key)) keyed.set(key, []);
    keyed.get(key).push(child);
  }
  const wanted = [...next.childNodes];
  wanted.forEach((child, i) => {
    const here = old.childNodes[i];
    const key = keyOf(child);
    const match = key !== null ? keyed.get(key)?.shift()
      : here && keyOf(here) === null && sameNode(here, child) ? here : null;
    if (match) {
      if (match !== here) old.insertBefore(match, here || null);
      morph(match, child);
    } else {
      old.insertBefore(child, here || null);
    }
  });
  while (old.childNodes.length > wanted.length) old.lastChild.remove();
}

export function render(view) {
  const box = $("pools");
  const panel = $("pools-panel");
  const pools = view?.replaying ? [] : view?.rec.pools || [];
  const live = isLive(view?.rec);
  // What is drawn: the pools' numbers (new ones every second or so while live) and the
  // processes' badges (a worker the page learns of gets its colour).
  const key = `${view?.rec.id}|${view?.replaying}|${live}|${view?.procs.length}|${JSON.stringify(pools)}`;
  if (key === lastKey) return;
  lastKey = key;
  panel.hidden = !pools.length;
  box.dataset.live = String(live && pools.length > 0);
  if (!pools.length) {
    box.replaceChildren();
    return;
  }
  const procOf = new Map(view.procs.map((p) => [p.pid, p]));
  const next = el("div", {}, ...pools.map((p) => poolBlock(p, procOf, live)));
  if (view.rec.id !== lastRun) box.replaceChildren();     // another run: nothing of the last one stays
  lastRun = view.rec.id;
  morphChildren(box, next);
}
