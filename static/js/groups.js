// Pool workers as one group, for runs too big to read row by row: past MANY processes the tree
// and the timeline show each pool's workers as one expandable row (count, how they ended,
// aggregate CPU). Which workers form a pool comes from the run's `pools` (so far while live), else from
// the pool's task events (while live), else from being same-named siblings of one parent
// ("ForkPoolWorker-7", "SpawnProcess-3"): a Pool whose workers have not taken a task yet.
import { invalidate } from "./store.js";
import { exitText } from "./util.js";

export const MANY = 12;            // more processes than this: group, and draw the CPU heatmap
const MIN_GROUP = 3;               // fewer siblings than this stay as rows
const expanded = new Set();        // group ids the user opened (kept across redraws and runs)

/** Toggle a group open or closed (the row's button). */
export function toggle(id) {
  if (expanded.has(id)) expanded.delete(id);
  else expanded.add(id);
  invalidate();
}

export function isOpen(id) {
  return expanded.has(id);
}

function family(name) {
  return String(name || "").replace(/[-_ ]?\d+$/, "");
}

/**
 * {groups: Map id -> {id, label, pids: []}, groupOf: Map pid -> id} for the view, empty when the
 * run has MANY processes or fewer (every process stays its own row).
 */
export function groupsOf(view) {
  const groups = new Map();
  const groupOf = new Map();
  if (!view || view.procs.length <= MANY) return { groups, groupOf };
  const byPid = new Map(view.procs.map((p) => [p.pid, p]));
  const add = (id, label, pid) => {
    if (groupOf.has(pid) || !byPid.has(pid) || byPid.get(pid).role === "main") return;
    if (!groups.has(id)) groups.set(id, { id, label, pids: [] });
    groups.get(id).pids.push(pid);
    groupOf.set(pid, id);
  };
  for (const pool of view.rec.pools || []) {
    for (const w of pool.workers || []) add(pool.id, `${pool.kind || "pool"} ${pool.id}`, w.pid);
  }
  for (const e of view.events) {
    if (e.kind === "task_start" && e.channel) add(e.channel, e.channel, e.pid);
  }
  // Workers known only by name: same parent, same name family.
  const siblings = new Map();
  for (const p of view.procs) {
    if (p.role !== "worker" || groupOf.has(p.pid)) continue;
    const key = `${p.ppid}|${family(p.name)}`;
    if (!siblings.has(key)) siblings.set(key, []);
    siblings.get(key).push(p.pid);
  }
  // A pool's workers that have not run a task yet (or never will) join the pool their
  // same-named siblings are in.
  const poolOfKin = new Map();
  for (const [pid, id] of groupOf) {
    const p = byPid.get(pid);
    poolOfKin.set(`${p.ppid}|${family(p.name)}`, id);
  }
  for (const [key, pids] of siblings) {
    const pool = poolOfKin.get(key);
    if (pool !== undefined) {
      for (const pid of pids) add(pool, groups.get(pool).label, pid);
      continue;
    }
    if (pids.length < MIN_GROUP) continue;
    const name = key.split("|")[1] || "workers";
    for (const pid of pids) add(`kin:${key}`, `${name} of ${key.split("|")[0]}`, pid);
  }
  // A pool's channel can hold one worker (ThreadPool: one pid): not worth a group row.
  for (const [id, g] of groups) {
    if (g.pids.length < 2) {
      groups.delete(id);
      for (const pid of g.pids) groupOf.delete(pid);
    }
  }
  return { groups, groupOf };
}

/**
 * How a group's members ended, most common first: "38 exit 0 · 2 terminated SIGTERM · 1 alive".
 * Words, not only shapes, and every member counted once.
 */
export function endingsText(members) {
  const counts = new Map();
  for (const p of members) {
    const ended = p.ended_at !== null && p.ended_at !== undefined;
    const word = !ended ? "alive" : p.end === "exit" ? exitText(p.exitcode ?? 0)
      : p.end ? `${p.end}${p.exitcode !== null && p.exitcode !== undefined ? ` ${exitText(p.exitcode)}` : ""}` : "ended";
    counts.set(word, (counts.get(word) || 0) + 1);
  }
  return [...counts].sort((a, b) => b[1] - a[1]).map(([w, n]) => `${n} ${w}`).join(" · ");
}

/** The worst way a member ended (the group row shows its shape): crash > killed > terminated > exit. */
export function worstEnd(members) {
  const rank = { crash: 4, killed: 3, terminated: 2, exit: 1 };
  let worst = null;
  for (const p of members) {
    if (p.ended_at === null || p.ended_at === undefined) return null;   // some still alive
    if (!worst || (rank[p.end] || 0) > (rank[worst.end] || 0)) worst = p;
  }
  return worst;
}

/** The open groups, as a key: a panel that redraws only on change redraws when one opens. */
export function openKey() {
  return [...expanded].join(",");
}
