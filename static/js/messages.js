// What crossed between processes: per channel (queue, pipe) counts and depth over time, the
// latest messages from → to, shared Value/Array cells as a grid that flashes when written,
// each pool's tasks (every task is a message out and one back, so one item per task floods
// the pipes where a few big chunks do not), and terminate() signals. Rendered from the generic
// Event shape; no lesson-specific text.
import { $, el, colourOf, inkOn, fmtNum } from "./util.js";
import { LineChart } from "./charts.js";

const SEND = { queue_put: "put", pipe_send: "send" };
const RECV = { queue_get: "get", pipe_recv: "recv" };
const MAX_ROWS = 14;
let lastKey = null;
let depthChart = null;
let depthHost = null;
const cellSeq = new Map();        // "channel|index" -> seq of the write shown last time

function chip(pid, procs) {
  const p = procs.get(pid);
  if (!p) return el("span", { class: "pid-chip plain" }, pid === null || pid === undefined ? "?" : String(pid));
  const { colour, dash } = colourOf(p.colour);
  return el("span", { class: `pid-chip${dash ? " dashed" : ""}`, style: { background: colour, color: inkOn(colour) } }, String(pid));
}

/** Per channel: counts, bytes, depth series [[t...], [depth...]]; plus message pairs. */
export function summarise(events) {
  const channels = new Map();
  const sent = new Map();
  const pairs = [];
  const cells = new Map();
  const signals = [];
  const pools = new Map();        // pool channel -> {tasks, items (of the tasks sent one by one), workers}
  const pool = (name) => {
    if (!pools.has(name)) pools.set(name, { name, tasks: 0, counted: 0, items: 0, summarised: false, workers: new Set() });
    return pools.get(name);
  };
  const ch = (name, type) => {
    if (!channels.has(name)) channels.set(name, { name, type, sends: 0, recvs: 0, bytes: 0, depth: 0, ts: [], ds: [] });
    return channels.get(name);
  };
  // Each process reports over its own connection, so a recv can arrive (by seq) before the send
  // it answers: read them in the order they happened.
  const ordered = [...events].sort((a, b) => a.t - b.t);
  const early = new Map();        // recvs seen before their send, by "channel|msg"
  for (const e of ordered) {
    if (e.kind in SEND) {
      const c = ch(e.channel, e.kind === "queue_put" ? "queue" : "pipe");
      c.sends += 1;
      c.bytes += e.size || 0;
      c.depth += 1;
      c.ts.push(e.t);
      c.ds.push(c.depth);
      const key = `${e.channel}|${e.msg}`;
      const hasId = e.msg !== null && e.msg !== undefined;
      const pair = { send: e, recv: null, t: e.t };
      if (hasId && early.has(key)) {
        // Its recv came first: pair them and undo the depth that recv could not take off.
        const r = early.get(key);
        early.delete(key);
        pairs.splice(pairs.indexOf(r.pair), 1);
        pair.recv = r.pair.recv;
        pair.t = r.pair.t;
        c.depth = Math.max(0, c.depth - 1);
        c.ds[c.ds.length - 1] = c.depth;
      } else if (hasId) sent.set(key, pair);
      pairs.push(pair);
    } else if (e.kind in RECV) {
      const c = ch(e.channel, e.kind === "queue_get" ? "queue" : "pipe");
      c.recvs += 1;
      c.depth = Math.max(0, c.depth - 1);
      c.ts.push(e.t);
      c.ds.push(c.depth);
      const key = `${e.channel}|${e.msg}`;
      const pair = sent.get(key);
      if (pair && !pair.recv) {
        pair.recv = e;
        pair.t = e.t;
      } else {
        const lone = { send: null, recv: e, t: e.t };
        if (e.msg !== null && e.msg !== undefined) early.set(key, { pair: lone });
        pairs.push(lone);
      }
    } else if (e.kind === "task_end" && e.channel) {
      const p = pool(e.channel);
      p.tasks += 1;
      p.counted += 1;
      p.items += e.items || 1;
      p.workers.add(e.pid);
    } else if (e.kind === "traffic") {
      if (e.tasks_ended && e.channel) {
        const p = pool(e.channel);
        p.tasks += e.tasks_ended;
        p.summarised = true;
        p.workers.add(e.pid);
      }
      // A summary counts puts/gets (queue) or sends/recvs (pipe), its bytes in `size`; summaries
      // of shared writes and pool tasks are not channel traffic.
      const queued = (e.puts || 0) + (e.gets || 0);
      const piped = (e.sends || 0) + (e.recvs || 0);
      if (!queued && !piped) continue;
      const c = ch(e.channel, piped ? "pipe" : "queue");
      c.sends += (e.puts || 0) + (e.sends || 0);
      c.recvs += (e.gets || 0) + (e.recvs || 0);
      c.bytes += e.size || 0;
      if (typeof e.depth === "number") c.depth = e.depth;
      c.summarised = true;
      c.ts.push(e.t);
      c.ds.push(c.depth);
    } else if (e.kind === "shared_write") {
      if (!cells.has(e.channel)) cells.set(e.channel, new Map());
      cells.get(e.channel).set(e.index ?? null, { value: e.value ?? e.detail, pid: e.pid, seq: e.seq, t: e.t });
    } else if (e.kind === "terminate") {
      signals.push(e);
    }
  }
  return { channels, pairs, cells, signals, pools };
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
      return el("div", { class: `cell${fresh ? " flash" : ""}`, "data-testid": "shared-cell", title: `written by ${c.pid}`, style: { borderColor: colour } },
        el("span", { class: "cell-i" }, index === null ? "value" : `[${index}]`),
        el("span", { class: "cell-v num" }, String(c.value ?? "")));
    })));
}

export function render(view) {
  const box = $("messages");
  if (!view) {
    if (lastKey !== "none") box.replaceChildren(el("p", { class: "empty" }, "Queues, pipes and shared memory show up here while a run uses them."));
    lastKey = "none";
    return;
  }
  if (view.key === lastKey) return;
  if (!lastKey || lastKey.split(":")[0] !== view.rec.id) cellSeq.clear();
  lastKey = view.key;
  const procs = new Map(view.procs.map((p) => [p.pid, p]));
  const { channels, pairs, cells, signals, pools } = summarise(view.events);
  const parts = [];
  if (pools.size) parts.push(el("div", { class: "channels" }, ...[...pools.values()].map(poolCard)));
  if (channels.size) {
    parts.push(el("div", { class: "channels" }, ...[...channels.values()].map((c) => el("div", { class: "channel-card", "data-testid": "channel", "data-channel": c.name },
      el("div", { class: "channel-name" }, c.name, el("span", { class: "sub" }, ` ${c.type}${c.summarised ? " · summarised" : ""}`)),
      el("div", { class: "channel-stats num" },
        `${c.sends} ${c.type === "queue" ? "put" : "sent"} · ${c.recvs} ${c.type === "queue" ? "got" : "received"} · depth ${c.depth}${c.bytes ? ` · ${c.bytes} B` : ""}`)))));
  }
  if (!depthHost) {
    depthHost = el("div", { class: "chart small", "data-testid": "chart-queue-depth" });
    depthChart = new LineChart(depthHost, { yUnit: "", yFloor: 2, height: 110, stepped: true });
  }
  // A depth curve says something once a queue carries more than a handful of items.
  const queues = [...channels.values()].filter((c) => c.type === "queue" && c.ts.length >= 6);
  if (queues.length) parts.push(el("div", { class: "chart-label" }, "queue depth"), depthHost);
  if (pairs.length) {
    const recent = pairs.sort((a, b) => a.t - b.t).slice(-MAX_ROWS);
    parts.push(el("table", { class: "msg-table" },
      el("thead", {}, el("tr", {}, ...["at", "channel", "from → to", "message", "size", "took"].map((h, i) => el("th", { scope: "col", class: [0, 4, 5].includes(i) ? "r" : "" }, h)))),
      el("tbody", {}, ...recent.map((p) => pairRow(p, view.t0, procs)))));
  }
  for (const [channel, c] of cells) parts.push(cellGrid(channel, c, procs));
  if (signals.length) {
    parts.push(el("h3", {}, "terminate()"), el("ul", { class: "signals" }, ...signals.slice(-8).map((e) => {
      const target = Number(e.channel);
      return el("li", { title: e.detail || "" }, el("span", { class: "num" }, `${fmtNum(e.t - view.t0, 2)} s `),
        chip(e.pid, procs), el("span", { class: "arrow" }, " ⊘→ "),
        Number.isInteger(target) && procs.has(target) ? chip(target, procs) : String(e.channel ?? ""),
        el("span", { class: "sub" }, ` ${e.detail || ""}`));
    })));
  }
  if (!parts.length) {
    const quiet = view.events.some((e) => e.kind === "mark" && e.detail === "untraced");
    parts.push(el("p", { class: "empty" }, quiet
      ? "Nothing recorded: this run timed its processes without tracing (the shaded part of the timeline), so its traffic is not shown."
      : "No queue, pipe or shared-memory traffic in this run."));
  }
  box.replaceChildren(...parts);
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
    depthChart.update(queues.map((q, k) => ({ id: q.name, label: q.name, colour: ["#0072B2", "#D55E00", "#009E73", "#CC79A7"][k % 4] })),
      data, [view.xMin, view.xMax]);
  }
}
