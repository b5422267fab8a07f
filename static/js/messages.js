// What crossed between processes: per channel (queue, pipe) counts and depth over time, the
// latest messages from → to, shared Value/Array cells as a grid that flashes when written,
// and terminate() signals, each pool's tasks (every task is a message out and one back, so one
// item per task floods the pipes where a few big chunks do not). Rendered from the generic Event
// shape; no lesson-specific text.
import { $, el, colourOf, fmtNum, procBadge } from "./util.js";
import { LineChart } from "./charts.js";

const SEND = { queue_put: "put", pipe_send: "send" };
const RECV = { queue_get: "get", pipe_recv: "recv" };
const MAX_ROWS = 14;
let lastKey = null;
let depthChart = null;
let depthHost = null;
const cellSeq = new Map();        // "channel|index" -> seq of the write shown last time

function chip(pid, procs) {
  return procBadge(procs.get(pid), pid);
}

const POOL_KINDS = new Set(["task_put", "task_start", "task_end", "result_get"]);
const TRAFFIC_KINDS = new Set(["traffic", "shared_init", "shared_write", "terminate"]);
const byTime = (a, b) => a.t - b.t;
// The order the latest rows are listed in: what a stable sort of [...pairs, ...taskRows] by time
// gives (ties: pairs first, each in the order it was added).
const later = (a, b) => a.t - b.t || a.g - b.g || a.ord - b.ord;

/**
 * Everything the panel shows, folded in one event at a time, in time order. A busy pool sends
 * thousands of events; going over all of them on every draw cost more than drawing, so the
 * panel keeps one of these per shown run and folds only what arrived since (see trafficOf).
 */
class Traffic {
  constructor() {
    this.channels = new Map();
    this.sent = new Map();
    this.pairs = [];
    this.cells = new Map();
    this.signals = [];
    this.poolTasks = new Map();   // pool channel -> {tasks, items (of the tasks sent one by one), workers}
    this.early = new Map();       // recvs seen before their send, by "channel|msg"
    this.queues = new Map();      // a pool's two internal queues, by pool channel
    this.taskKeys = new Map();    // "channel|msg|task/result" -> the task's row, then its result's row
    this.taskRows = [];
    this.recent = [];             // the latest MAX_ROWS pairs and task rows, oldest first
    this.ord = 0;
    this.maxT = -Infinity;
    this.untraced = false;
  }

  add(e) {
    if (e.t > this.maxT) this.maxT = e.t;
    if (e.kind === "mark" && e.detail === "untraced") this.untraced = true;
    this.addTraffic(e);
    if (POOL_KINDS.has(e.kind) || (e.kind === "traffic" && (e.tasks_started || e.tasks_ended || e.tasks_put || e.results_got))) {
      this.addPoolQueue(e);
    }
  }

  /**
   * Whether `e`, which happened before events already folded, may be folded now with the same
   * outcome as in time order: kinds the panel does not draw, and a task event of a pool whose
   * owner reports nothing (no depth series, no result_get to pair with: only counts, sets and a
   * row placed by its time). Workers report over their own connections, so their task events
   * cross all the time in a busy pool; anything else folds the run anew.
   */
  orderFree(e) {
    if (!(e.kind in SEND || e.kind in RECV || POOL_KINDS.has(e.kind) || TRAFFIC_KINDS.has(e.kind))) return true;
    if (e.kind !== "task_start" && e.kind !== "task_end") return false;
    const q = this.queues.get(e.channel ?? "Pool");
    if (!q || q.tapped || q.got) return false;
    if (e.kind === "task_start") return true;
    return (!e.channel || this.poolTasks.has(e.channel)) && !this.taskKeys.has(`${e.channel}|${e.msg}|result`);
  }

  /** A pair or task row was added or its time moved on: keep `recent` the latest MAX_ROWS. */
  touch(x) {
    const r = this.recent;
    const i = r.indexOf(x);
    if (i >= 0) r.splice(i, 1);
    if (r.length >= MAX_ROWS && later(x, r[0]) < 0) return;
    let j = r.length;
    while (j > 0 && later(r[j - 1], x) > 0) j--;
    r.splice(j, 0, x);
    if (r.length > MAX_ROWS) r.shift();
  }

  addPair(pair) {
    pair.g = 0;
    pair.ord = this.ord++;
    this.pairs.push(pair);
    this.touch(pair);
  }

  addRow(row) {
    row.g = 1;
    row.ord = this.ord++;
    this.taskRows.push(row);
    this.touch(row);
  }

  channel(name, type) {
    if (!this.channels.has(name)) this.channels.set(name, { name, type, sends: 0, recvs: 0, bytes: 0, depth: 0, ts: [], ds: [] });
    return this.channels.get(name);
  }

  poolOf(name) {
    if (!this.poolTasks.has(name)) this.poolTasks.set(name, { name, tasks: 0, counted: 0, items: 0, summarised: false, workers: new Set() });
    return this.poolTasks.get(name);
  }

  /** Per channel: counts, bytes, depth series [[t...], [depth...]]; plus message pairs. */
  addTraffic(e) {
    if (e.kind in SEND) {
      const c = this.channel(e.channel, e.kind === "queue_put" ? "queue" : "pipe");
      c.sends += 1;
      c.bytes += e.size || 0;
      c.depth += 1;
      c.ts.push(e.t);
      c.ds.push(c.depth);
      const key = `${e.channel}|${e.msg}`;
      const hasId = e.msg !== null && e.msg !== undefined;
      const pair = { send: e, recv: null, t: e.t };
      if (hasId && this.early.has(key)) {
        // Its recv came first: pair them and undo the depth that recv could not take off.
        const r = this.early.get(key);
        this.early.delete(key);
        this.pairs.splice(this.pairs.indexOf(r.pair), 1);
        const i = this.recent.indexOf(r.pair);
        if (i >= 0) this.recent.splice(i, 1);   // the merged pair (added later, same t) takes its place
        pair.recv = r.pair.recv;
        pair.t = r.pair.t;
        c.depth = Math.max(0, c.depth - 1);
        c.ds[c.ds.length - 1] = c.depth;
      } else if (hasId) this.sent.set(key, pair);
      this.addPair(pair);
    } else if (e.kind in RECV) {
      const c = this.channel(e.channel, e.kind === "queue_get" ? "queue" : "pipe");
      c.recvs += 1;
      c.depth = Math.max(0, c.depth - 1);
      c.ts.push(e.t);
      c.ds.push(c.depth);
      const key = `${e.channel}|${e.msg}`;
      const pair = this.sent.get(key);
      if (pair && !pair.recv) {
        pair.recv = e;
        pair.t = e.t;
        this.touch(pair);
      } else {
        const lone = { send: null, recv: e, t: e.t };
        if (e.msg !== null && e.msg !== undefined) this.early.set(key, { pair: lone });
        this.addPair(lone);
      }
    } else if (e.kind === "task_end" && e.channel) {
      const p = this.poolOf(e.channel);
      p.tasks += 1;
      p.counted += 1;
      p.items += e.items || 1;
      p.workers.add(e.pid);
    } else if (e.kind === "traffic") {
      if (e.tasks_ended && e.channel) {
        const p = this.poolOf(e.channel);
        p.tasks += e.tasks_ended;
        p.summarised = true;
        p.workers.add(e.pid);
      }
      // A summary counts puts/gets (queue) or sends/recvs (pipe), its bytes in `size`; summaries
      // of shared writes and pool tasks are not channel traffic.
      const queued = (e.puts || 0) + (e.gets || 0);
      const piped = (e.sends || 0) + (e.recvs || 0);
      if (!queued && !piped) return;
      const c = this.channel(e.channel, piped ? "pipe" : "queue");
      c.sends += (e.puts || 0) + (e.sends || 0);
      c.recvs += (e.gets || 0) + (e.recvs || 0);
      c.bytes += e.size || 0;
      if (typeof e.depth === "number") c.depth = e.depth;
      c.summarised = true;
      c.ts.push(e.t);
      c.ds.push(c.depth);
    } else if (e.kind === "shared_init") {
      // The value(s) it was created with: the "before" of every cell.
      if (!this.cells.has(e.channel)) this.cells.set(e.channel, new Map());
      const grid = this.cells.get(e.channel);
      const values = Array.isArray(e.value) ? e.value : [e.value];
      values.forEach((v, k) => {
        const index = Array.isArray(e.value) ? k : null;
        const old = grid.get(index);
        if (old) old.before = v;
        else grid.set(index, { value: v, before: v, pid: null, seq: null, t: e.t, initial: true });
      });
    } else if (e.kind === "shared_write") {
      if (!this.cells.has(e.channel)) this.cells.set(e.channel, new Map());
      const grid = this.cells.get(e.channel);
      // A slice write carries a list of values from `index` on.
      const values = Array.isArray(e.value) && e.index !== null && e.index !== undefined ? e.value : [e.value ?? e.detail];
      values.forEach((v, k) => {
        const index = e.index === null || e.index === undefined ? null : e.index + k;
        const old = grid.get(index);
        grid.set(index, { value: v, before: old?.before, pid: e.pid, seq: e.seq, t: e.t });
      });
    } else if (e.kind === "terminate") {
      this.signals.push(e);
    }
  }

  queue(name) {
    if (!this.queues.has(name)) {
      this.queues.set(name, {
        name, put: 0, taken: 0, items: 0, results: 0, got: 0, failed: 0, summarised: false, tapped: false,
        workers: new Set(), tq: { ts: [], ds: [], peak: 0 }, rq: { ts: [], ds: [], peak: 0 },
      });
    }
    return this.queues.get(name);
  }

  /**
   * A pool's two internal queues. The owner reports each task it puts on the task queue
   * (task_put) and each result it takes off the result queue (result_get); the worker reports
   * the task it takes (task_start) and the result it puts (task_end), all with one msg per task.
   * So task-queue depth = put − taken and result-queue depth = sent back − collected, at every
   * instant; past the rate budget the same four are counted in traffic summaries. A row whose
   * other end is the worker's parent keeps the worker's pid (`ownerOf`): the parent is looked up
   * when the row is drawn, as its `proc` message may come after the task's events.
   */
  addPoolQueue(e) {
    const q = this.queue(e.channel ?? "Pool");
    const key = `${e.channel}|${e.msg}`;
    const depth = (t) => {
      if (!q.tapped) return;
      const tq = Math.max(0, q.put - q.taken);
      const rq = Math.max(0, q.results - q.got);
      q.tq.ts.push(t); q.tq.ds.push(tq); q.tq.peak = Math.max(q.tq.peak, tq);
      q.rq.ts.push(t); q.rq.ds.push(rq); q.rq.peak = Math.max(q.rq.peak, rq);
    };
    if (e.kind === "traffic") {
      q.put += e.tasks_put || 0;
      q.taken += e.tasks_started || 0;
      q.results += e.tasks_ended || 0;
      q.got += e.results_got || 0;
      if (e.tasks_put || e.results_got) q.tapped = true;
      else q.workers.add(e.pid);
      q.summarised = true;
      depth(e.t);
      return;
    }
    if (e.kind === "task_put") {
      q.tapped = true;
      q.put += 1;
      const row = { t: e.t, channel: `${q.name} tasks`, from: e.pid, to: null, detail: e.detail, task: true, put: e };
      this.taskKeys.set(`${key}|task`, row);
      this.addRow(row);
    } else if (e.kind === "task_start") {
      q.workers.add(e.pid);
      q.taken += 1;
      q.items += e.items || 1;
      const row = this.taskKeys.get(`${key}|task`);
      if (row) {
        row.to = e.pid;
        row.waited = e.t - row.t;
      } else {
        this.addRow({ t: e.t, channel: `${q.name} tasks`, ownerOf: e.pid, to: e.pid, detail: e.detail, task: true });
      }
    } else if (e.kind === "task_end") {
      q.results += 1;
      if (e.ok === false) q.failed += 1;
      const row = { t: e.t, channel: `${q.name} results`, from: e.pid, detail: e.detail, task: true };
      if (q.tapped) row.to = null;
      else row.ownerOf = e.pid;
      this.taskKeys.set(`${key}|result`, row);
      this.addRow(row);
    } else if (e.kind === "result_get") {
      q.got += 1;
      const row = this.taskKeys.get(`${key}|result`);
      if (row) {
        row.to = e.pid;
        row.waited = e.t - row.t;
      }
    }
    depth(e.t);
  }
}

/** A task row's two ends, the owner's looked up now (see addPoolQueue). */
function ends(r, procs) {
  const owner = r.ownerOf === undefined ? null : (procs.get(r.ownerOf)?.ppid ?? null);
  return { from: r.from === undefined ? owner : r.from, to: r.to === undefined ? owner : r.to };
}

function fromScratch(events) {
  const t = new Traffic();
  // Each process reports over its own connection, so a recv can arrive (by seq) before the send
  // it answers: read them in the order they happened.
  for (const e of [...events].sort(byTime)) t.add(e);
  return t;
}

/** A pool's two internal queues and their task/result rows (see Traffic.addPoolQueue). */
export function poolQueues(events, procs) {
  const t = fromScratch(events);
  return { pools: t.queues, rows: t.taskRows.map((r) => ({ ...r, ...ends(r, procs) })) };
}

/** Per channel: counts, bytes, depth series [[t...], [depth...]]; plus message pairs. */
export function summarise(events) {
  const t = fromScratch(events);
  return { channels: t.channels, pairs: t.pairs, cells: t.cells, signals: t.signals, pools: t.poolTasks };
}

// The shown run's Traffic and the events it has folded. New events are folded in (sorted among
// themselves first) when they happened after everything folded so far, or fold the same either
// way (orderFree); otherwise (another run, a replay whose events are not the folded ones plus
// more, a fetch merged in, two processes' reports crossing on a queue or pipe) the run is
// folded again from the start, in time order, so the panel always equals a from-scratch
// summary. `foldStats` says which path was taken.
let folded = null;
export const foldStats = { rebuilds: 0, appended: 0 };

function samePrefix(events, old, n) {
  for (let i = 0; i < n; i++) if (events[i] !== old[i]) return false;
  return true;
}

export function trafficOf(view) {
  const events = view.events;
  const f = folded;
  let batch = null;
  if (f && f.run === view.rec.id && events.length >= f.n && (f.n === 0 || events[f.n - 1] === f.last)
      && (events === f.src || samePrefix(events, f.src, f.n))) {
    batch = events.slice(f.n).sort(byTime);
    for (const e of batch) {
      // (A Traffic left half-folded here is dropped: the run is folded anew below.)
      if (e.t < f.traffic.maxT && !f.traffic.orderFree(e)) {
        batch = null;
        break;
      }
      f.traffic.add(e);
    }
  }
  if (batch) foldStats.appended += batch.length;
  else {
    folded = { run: view.rec.id, traffic: fromScratch(events) };
    foldStats.rebuilds += 1;
  }
  Object.assign(folded, { src: events, n: events.length, last: events.at(-1) });
  return folded.traffic;
}

function taskRow(row, t0, procs) {
  // "took": how long the task (or result) waited in its queue before it was taken.
  const r = { ...row, ...ends(row, procs) };
  const waiting = r.to === null;
  return el("tr", { class: `task-row${waiting ? " in-flight" : ""}`, "data-testid": "message-row", "data-kind": "task" },
    el("td", { class: "num r" }, `${fmtNum(r.t - t0, 2)} s`),
    el("td", {}, r.channel),
    el("td", {}, r.from !== null ? chip(r.from, procs) : "?", el("span", { class: "arrow", "aria-label": "to" }, " → "),
      waiting ? el("span", { class: "waiting" }, "waiting") : chip(r.to, procs)),
    el("td", { class: "detail" }, String(r.detail ?? "")),
    el("td", { class: "num r" }, ""),
    el("td", { class: "num r", title: "time it waited in the queue" }, r.waited !== undefined ? `${fmtNum(r.waited * 1000, 1)} ms` : ""));
}

function poolCards(pools) {
  const cards = [];
  for (const q of pools.values()) {
    const note = q.summarised ? " · summarised" : "";
    const tDepth = q.tapped ? ` · depth ${q.tq.ds.at(-1) ?? 0} (peak ${q.tq.peak})` : "";
    const rDepth = q.tapped ? ` · depth ${q.rq.ds.at(-1) ?? 0} (peak ${q.rq.peak})` : "";
    const workers = q.workers.size ? ` by ${q.workers.size} worker${q.workers.size === 1 ? "" : "s"}` : "";
    cards.push(el("div", { class: "channel-card pool-card", "data-testid": "channel", "data-channel": `${q.name} tasks`, "data-kind": "pool-tasks",
      "data-count": q.taken, "data-put": q.tapped ? q.put : null, "data-peak": q.tapped ? q.tq.peak : null },
      el("div", { class: "channel-name" }, `${q.name} tasks`, el("span", { class: "sub" }, ` task queue${note}`)),
      el("div", { class: "channel-stats num" },
        `${q.tapped ? `${q.put} put · ` : ""}${q.taken} taken${workers}${q.items && q.items !== q.taken ? ` · ${q.items} items` : ""}${tDepth}`)));
    cards.push(el("div", { class: "channel-card pool-card", "data-testid": "channel", "data-channel": `${q.name} results`, "data-kind": "pool-results",
      "data-count": q.results, "data-got": q.tapped ? q.got : null, "data-peak": q.tapped ? q.rq.peak : null },
      el("div", { class: "channel-name" }, `${q.name} results`, el("span", { class: "sub" }, ` result queue${note}`)),
      el("div", { class: "channel-stats num" },
        `${q.results} sent back${q.failed ? ` (${q.failed} raised)` : ""}${q.tapped ? ` · ${q.got} collected` : ""}${rDepth}`)));
  }
  return cards;
}

function poolCard(p) {
  // Items per task from the tasks reported one by one (a summary counts tasks, not items).
  const per = p.counted ? p.items / p.counted : null;
  const perText = per === null ? "" : ` · ${per >= 10 ? Math.round(per).toLocaleString("en") : fmtNum(per, per % 1 ? 1 : 0)} item${per === 1 ? "" : "s"} per task`;
  return el("div", { class: "channel-card", "data-testid": "pool-tasks", "data-channel": p.name, "data-tasks": String(p.tasks) },
    el("div", { class: "channel-name" }, p.name, el("span", { class: "sub" }, ` pool${p.summarised ? " · summarised" : ""}`)),
    el("div", { class: "channel-stats num" },
      `${p.tasks.toLocaleString("en")} task${p.tasks === 1 ? "" : "s"} on ${p.workers.size} worker${p.workers.size === 1 ? "" : "s"}${perText} · ${(2 * p.tasks).toLocaleString("en")} messages`));
}

function pairRow(pair, t0, procs) {
  const e = pair.send || pair.recv;
  const latency = pair.send && pair.recv ? `${fmtNum((pair.recv.t - pair.send.t) * 1000, 1)} ms` : "";
  return el("tr", { class: pair.recv ? "" : "in-flight", "data-testid": "message-row" },
    el("td", { class: "num r" }, `${fmtNum(e.t - t0, 2)} s`),
    el("td", {}, e.channel ?? ""),
    el("td", {}, pair.send ? chip(pair.send.pid, procs) : "?", el("span", { class: "arrow", "aria-label": "to" }, " → "),
      pair.recv ? chip(pair.recv.pid, procs) : el("span", { class: "waiting" }, "waiting")),
    el("td", { class: "detail" }, String(e.detail ?? "")),
    el("td", { class: "num r" }, e.size ? `${e.size} B` : ""),
    el("td", { class: "num r" }, latency));
}

function cellGrid(channel, cells, procs) {
  const entries = [...cells.entries()].sort((a, b) => (a[0] ?? -1) - (b[0] ?? -1));
  return el("div", { class: "cells-card", "data-testid": "shared-cells", "data-channel": channel },
    el("div", { class: "cells-h" }, channel),
    el("div", { class: "cells" }, ...entries.map(([index, c]) => {
      const key = `${channel}|${index}`;
      const fresh = cellSeq.has(key) && cellSeq.get(key) !== c.seq;
      cellSeq.set(key, c.seq);
      const p = procs.get(c.pid);
      const { colour } = p ? colourOf(p.colour) : { colour: "transparent" };
      const changed = c.before !== undefined && !c.initial && String(c.before) !== String(c.value);
      return el("div", { class: `cell${fresh ? " flash" : ""}`, "data-testid": "shared-cell", title: c.initial ? "as created; not written yet" : `written by ${c.pid}`,
        "data-before": c.before === undefined ? null : String(c.before), "data-value": String(c.value ?? ""), style: { borderColor: colour } },
        el("span", { class: "cell-i" }, index === null ? "value" : `[${index}]`),
        changed ? el("span", { class: "cell-before num", "data-testid": "shared-before" }, `${c.before} →`) : null,
        el("span", { class: "cell-v num" }, String(c.value ?? "")));
    })));
}

// What the panel shows, as sections in order; a section's nodes are kept while its markup is
// unchanged, so a frame that only moved the latest rows rebuilds the table and nothing else.
let shown = [];   // [{id, html, nodes}]

function section(id, ...nodes) {
  // The depth chart's host keeps its uPlot: compared by the other nodes' markup only.
  const html = nodes.map((n) => (n === depthHost ? "<chart>" : n.outerHTML)).join("");
  const old = shown.find((s) => s.id === id);
  return old && old.html === html ? old : { id, html, nodes };
}

/** Put `nodes` in `box` in order, touching only the ones that are not already in place. */
function patch(box, nodes) {
  const keep = new Set(nodes);
  for (const c of [...box.childNodes]) if (!keep.has(c)) c.remove();
  let cur = box.firstChild;
  for (const n of nodes) {
    if (n === cur) cur = cur.nextSibling;
    else box.insertBefore(n, cur);
  }
}

export function render(view) {
  const box = $("messages");
  if (!view) {
    if (lastKey !== "none") box.replaceChildren(el("p", { class: "empty" }, "Queues, pipes and shared memory show up here while a run uses them."));
    lastKey = "none";
    shown = [];
    return;
  }
  if (view.key === lastKey) return;
  if (!lastKey || lastKey.split(":")[0] !== view.rec.id) cellSeq.clear();
  lastKey = view.key;
  const procs = new Map(view.procs.map((p) => [p.pid, p]));
  const { channels, pairs, cells, signals, poolTasks, queues: pools, taskRows, recent, untraced } = trafficOf(view);
  const parts = [];
  if (poolTasks.size) parts.push(section("pool-tasks", el("div", { class: "channels" }, ...[...poolTasks.values()].map(poolCard))));
  if (channels.size || pools.size) {
    parts.push(section("channels", el("div", { class: "channels" }, ...poolCards(pools), ...[...channels.values()].map((c) => el("div", { class: "channel-card", "data-testid": "channel", "data-channel": c.name },
      el("div", { class: "channel-name" }, c.name, el("span", { class: "sub" }, ` ${c.type}${c.summarised ? " · summarised" : ""}`)),
      el("div", { class: "channel-stats num" },
        `${c.sends} ${c.type === "queue" ? "put" : "sent"} · ${c.recvs} ${c.type === "queue" ? "got" : "received"} · depth ${c.depth}${c.bytes ? ` · ${c.bytes} B` : ""}`))))));
  }
  if (!depthHost) {
    depthHost = el("div", { class: "chart small", "data-testid": "chart-queue-depth" });
    depthChart = new LineChart(depthHost, { yUnit: "", yFloor: 2, height: 110, stepped: true, whole: true });
  }
  // A depth curve says something once a queue carries more than a handful of items.
  const queues = [...channels.values()].filter((c) => c.type === "queue" && c.ts.length >= 6);
  for (const q of pools.values()) {
    if (q.tq.ts.length >= 6) queues.push({ name: `${q.name} tasks`, ts: q.tq.ts, ds: q.tq.ds });
    if (q.rq.ts.length >= 6 && q.rq.peak > 0) queues.push({ name: `${q.name} results`, ts: q.rq.ts, ds: q.rq.ds });
  }
  const depthColours = ["#0072B2", "#D55E00", "#009E73", "#CC79A7"];
  if (queues.length) {
    parts.push(section("depth", el("div", { class: "chart-label" }, "queue depth (items waiting)"), depthHost,
      el("div", { class: "legend", "data-testid": "depth-legend" }, ...queues.map((q, k) => el("span", { class: "legend-item static" },
        el("span", { class: "swatch-box", style: { background: depthColours[k % 4] } }), q.name)))));
  }
  if (pairs.length || taskRows.length) {
    const total = pairs.length + taskRows.length;
    parts.push(section("rows", el("table", { class: "msg-table" },
      el("thead", {}, el("tr", {}, ...["at", "channel", "from → to", "message", "size", "took"].map((h, i) => el("th", { scope: "col", class: [0, 4, 5].includes(i) ? "r" : "" }, h)))),
      el("tbody", {}, ...recent.map((p) => (p.task ? taskRow(p, view.t0, procs) : pairRow(p, view.t0, procs)))))));
    if (total > recent.length) parts.push(section("more", el("p", { class: "sub msg-more" }, `the latest ${recent.length} of ${total} messages`)));
  }
  for (const [channel, c] of cells) parts.push(section(`cells|${channel}`, cellGrid(channel, c, procs)));
  if (signals.length) {
    parts.push(section("signals", el("h3", {}, "terminate()"), el("ul", { class: "signals" }, ...signals.slice(-8).map((e) => {
      const target = Number(e.channel);
      return el("li", { title: e.detail || "" }, el("span", { class: "num" }, `${fmtNum(e.t - view.t0, 2)} s `),
        chip(e.pid, procs), el("span", { class: "arrow" }, " ⊘→ "),
        Number.isInteger(target) && procs.has(target) ? chip(target, procs) : String(e.channel ?? ""),
        el("span", { class: "sub" }, ` ${e.detail || ""}`));
    }))));
  }
  if (!parts.length) {
    parts.push(section("empty", el("p", { class: "empty" }, untraced
      ? "Nothing recorded: this run timed its processes without tracing (the shaded part of the timeline), so its traffic is not shown."
      : "No queue, pipe or shared-memory traffic in this run.")));
  }
  shown = parts;
  patch(box, parts.flatMap((s) => s.nodes));
  if (queues.length) {
    const xs = [...new Set(queues.flatMap((q) => q.ts))].sort((a, b) => a - b);
    const data = [xs.map((t) => t - view.t0)];
    for (const q of queues) {
      let i = 0;
      let d = 0;
      data.push(xs.map((t) => {
        while (i < q.ts.length && q.ts[i] <= t) d = q.ds[i++];
        return d;
      }));
    }
    depthChart.update(queues.map((q, k) => ({ id: q.name, label: q.name, colour: depthColours[k % 4] })),
      data, [view.xMin, view.xMax]);
  }
}
