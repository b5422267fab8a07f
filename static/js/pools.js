// The pool panel: for each pool of the run (its `pools`, computed by the server at the run's
// end), how its workers spent the pool's life: a bar per worker, running tasks (solid) vs idle
// (waiting for work, passing messages, starting up), with the task times and the slowest tasks.
// The question it answers: was the pool a good idea, and did every worker pull its weight?
import { $, el, fmtNum, procBadge } from "./util.js";

let lastKey = null;

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
  const share = total > 0 ? (100 * (w.busy_s || 0)) / total : 0;
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

function poolBlock(pool, procOf) {
  const workers = pool.workers || [];
  const longest = Math.max(0, ...workers.map((w) => (w.busy_s || 0) + (w.idle_s || 0)));
  const t = pool.task_s || {};
  const facts = [
    `${plural(pool.tasks ?? 0, "task")} on ${plural(workers.length, "worker")}`,
    pool.busy !== null && pool.busy !== undefined ? `busy ${fmtNum(pool.busy * 100, 0)} %` : null,
    pool.cpu !== null && pool.cpu !== undefined ? `CPU ${fmtNum(pool.cpu, 0)} % a worker` : null,
    `a task: p50 ${ms(t.p50)}, p95 ${ms(t.p95)}, max ${ms(t.max)}`,
    pool.dispatch_s !== null && pool.dispatch_s !== undefined ? `between tasks ${ms(pool.dispatch_s)}` : null,
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

export function render(view) {
  const box = $("pools");
  const panel = $("pools-panel");
  const pools = view?.replaying ? [] : view?.rec.pools || [];
  const key = `${view?.rec.id}|${view?.rec.version}|${pools.length}|${view?.replaying}`;
  if (key === lastKey) return;
  lastKey = key;
  panel.hidden = !pools.length;
  if (!pools.length) {
    box.replaceChildren();
    return;
  }
  const procOf = new Map(view.procs.map((p) => [p.pid, p]));
  box.replaceChildren(...pools.map((p) => poolBlock(p, procOf)));
}
