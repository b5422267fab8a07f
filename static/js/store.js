// The page's one state: lessons, runs (summaries for all, full detail for the few shown),
// the last applied seq, the selection. Every change marks the store dirty; panels redraw once
// per animation frame, never per message.

export const LIVE_WINDOW_S = 60;
const MAX_FULL_RUNS = 8;            // runs kept with their full detail (others: summary only)
const LIVE_STATES = new Set(["starting", "running"]);

export const store = {
  system: null,
  role: "presenter",
  lessons: [],
  lessonById: new Map(),
  runs: new Map(),          // id -> run record
  seq: 0,                   // highest seq applied from the stream
  selectedLesson: null,     // lesson id, or "summary" for the §11 map
  selectedRun: null,        // run id
  follow: true,             // show each new run as it starts (everyone watches the same run)
  scrub: null,              // replay: absolute time shown, or null for "the latest"
  compareWith: null,        // run id compared with the selected run
  highlight: { hover: null, pinned: null },   // pid a legend points at (hover) or holds (click)
  connected: false,
  skew: 0,                  // server clock − local clock, from metrics frames
  machineFrames: [],        // {t, cores} of recent frames, for the cores chart with no run
  perf: { framesReceived: 0, firstFrameAt: 0, draws: 0, drawMs: 0, drawMsMax: 0, lastDrawMs: 0 },
};

const listeners = [];
let scheduled = false;

export function onDraw(fn) {
  listeners.push(fn);
}

/** Ask for a redraw at the next animation frame (coalesces any number of calls). */
export function invalidate() {
  if (scheduled) return;
  scheduled = true;
  requestAnimationFrame(draw);
}

function draw() {
  scheduled = false;
  const t0 = performance.now();
  const view = currentView();
  const panelMs = [];
  for (const fn of listeners) {
    const a = performance.now();
    try {
      fn(view);
    } catch (err) {
      // One broken panel must not blank the others; surface it for the developer.
      console.error("panel draw failed", err);
    }
    panelMs.push(performance.now() - a);
  }
  const ms = performance.now() - t0;
  const p = store.perf;
  p.draws += 1;
  p.drawMs += ms;
  p.lastDrawMs = ms;
  p.panelMs = panelMs;   // per panel, in onDraw order (benchmarks/bench_page.py names them)
  p.drawMsMax = Math.max(p.drawMsMax, ms);
}

export function serverNow() {
  return Date.now() / 1000 + store.skew;
}

export function isLive(rec) {
  return !!rec && LIVE_STATES.has(rec.state);
}

// ---- runs ------------------------------------------------------------------------------------

function newRecord(id) {
  return {
    id, lesson: null, title: "", params: {}, kind: "lesson", command: null, state: "starting",
    started_at: null, ended_at: null, result: null, findings: [], pools: [], error: null, seq: 0,
    process_count: 0, time_limit: null, process_limit: null, rss_limit: null, cwd: null,
    python: null, source: null,
    full: false, loading: false, stale: false, pending: [],
    procs: new Map(), nextColour: 1,
    output: [], events: [], frames: [], marks: [], output_dropped: 0, stacks: [],
    lastOutSeq: 0, lastEventSeq: 0, lastFrameSeq: 0, lastStacksSeq: 0, version: 0,
  };
}

export function ensureRun(id) {
  let rec = store.runs.get(id);
  if (!rec) {
    rec = newRecord(id);
    store.runs.set(id, rec);
  }
  return rec;
}

const SUMMARY_FIELDS = ["lesson", "title", "params", "kind", "command", "state", "started_at", "pools",
  "ended_at", "result", "findings", "error", "process_count", "time_limit", "process_limit",
  "rss_limit", "cwd", "python"];

export function applySummary(s) {
  const rec = ensureRun(s.id);
  if (s.seq !== undefined && s.seq < rec.seq) return rec;
  for (const k of SUMMARY_FIELDS) if (k in s) rec[k] = s[k];
  if (s.seq !== undefined) rec.seq = s.seq;
  rec.version += 1;
  return rec;
}

/** Runs newest first. */
export function runList() {
  return [...store.runs.values()].sort((a, b) => (b.started_at || 0) - (a.started_at || 0) || (a.id < b.id ? 1 : -1));
}

function upsertProc(rec, p) {
  const old = rec.procs.get(p.pid);
  if (old && p.seq !== undefined && p.seq <= old.seq) return;
  if (old) {
    Object.assign(old, p);
  } else {
    // Colour 0 belongs to the main alone: a worker never looks like it.
    rec.procs.set(p.pid, { ...p, colour: p.role === "main" ? 0 : rec.nextColour++ });
  }
  rec.version += 1;
}

/** A `proc` message -> the Proc fields it carries. */
function procFromMessage(m, rec) {
  const p = {
    pid: m.pid, ppid: m.ppid, name: m.name, role: m.role, daemon: m.daemon, orphan: m.orphan,
    start_method: m.start_method, exitcode: m.exitcode, end: m.end, seq: m.seq,
  };
  const old = rec.procs.get(m.pid);
  if (m.kind === "start") p.started_at = m.t;
  else if (m.t !== null && m.t !== undefined) p.ended_at = m.t;
  if (!old) {
    if (p.started_at === undefined) p.started_at = m.t ?? rec.started_at;
    if (p.ended_at === undefined) p.ended_at = null;
  }
  return p;
}

function pushOutput(rec, line) {
  if (line.seq <= rec.lastOutSeq) return;
  rec.output.push(line);
  rec.lastOutSeq = line.seq;
  rec.version += 1;
}

function pushEvent(rec, ev) {
  if (ev.seq <= rec.lastEventSeq) return;
  rec.events.push(ev);
  rec.lastEventSeq = ev.seq;
  rec.version += 1;
}

/** A stacks Snapshot (from the `stacks` message, the POST answer or the fetched Run). */
export function pushStacks(rec, snap) {
  if (snap.seq <= rec.lastStacksSeq) return;
  rec.stacks.push(snap);
  if (rec.stacks.length > 20) rec.stacks.shift();   // the server keeps as many (MAX_STACKS)
  rec.lastStacksSeq = snap.seq;
  rec.version += 1;
}

function pushFrame(rec, f) {
  if (f.seq <= rec.lastFrameSeq) return;
  // A frame with none of the run's processes is not the run's (the server keeps only frames
  // that sampled one of them): kept, a live viewer's run would differ from a late joiner's.
  if (!f.pid.length) return;
  rec.frames.push(f);
  rec.lastFrameSeq = f.seq;
  rec.version += 1;
}

/** Pids that belong to another live run shown in detail (their columns are not this run's). */
function claimedElsewhere(rec) {
  const out = new Set();
  for (const other of store.runs.values()) {
    if (other === rec || !other.full || !isLive(other)) continue;
    for (const pid of other.procs.keys()) out.add(pid);
  }
  return out;
}

/**
 * The run's own columns of a server-wide metrics frame. A worker's first frame often arrives
 * before its `proc` start message (the sampler is poked by the same birth), so a pid no run
 * knows yet is kept too: panels draw only the processes the run has, and a pool worker living
 * 0.1 s would otherwise lose the one or two frames it was ever in.
 */
function ownFrame(rec, frame) {
  const idx = [];
  const others = claimedElsewhere(rec);
  for (let i = 0; i < frame.pid.length; i++) {
    const pid = frame.pid[i];
    if (rec.procs.has(pid) || !others.has(pid)) idx.push(i);
  }
  const own = { seq: frame.seq, t: frame.t, cores: frame.cores, pid: [], cpu: [], rss: [], core: [], status: "", threads: [] };
  if (frame.running) own.running = [];
  let status = "";
  for (const i of idx) {
    own.pid.push(frame.pid[i]);
    own.cpu.push(frame.cpu[i]);
    own.rss.push(frame.rss[i]);
    own.core.push(frame.core[i]);
    own.threads.push(frame.threads[i]);
    if (own.running) own.running.push(frame.running[i]);
    status += frame.status[i] || "?";
  }
  own.status = status;
  return own;
}

/** Apply one live message (name, payload) to the run it belongs to. */
export function applyLive(name, m) {
  if (m.seq > store.seq) store.seq = m.seq;
  if (name === "history") {   // whether run history is being written (history.js shows it)
    store.system = { ...store.system, history: m };
    return;
  }
  if (name === "run") {
    applySummary(m);
    return;
  }
  if (name === "run_deleted") {
    store.runs.delete(m.id);
    if (store.selectedRun === m.id) store.selectedRun = null;
    return;
  }
  if (name === "metrics") {
    const p = store.perf;
    p.framesReceived += 1;
    if (!p.firstFrameAt) p.firstFrameAt = performance.now();
    store.skew = m.t - Date.now() / 1000;
    store.machineFrames.push({ t: m.t, cores: m.cores });
    while (store.machineFrames.length && store.machineFrames[0].t < m.t - LIVE_WINDOW_S) store.machineFrames.shift();
    for (const rec of store.runs.values()) {
      if (!isLive(rec)) continue;
      if (rec.loading || (rec.full && rec.stale)) rec.pending.push([name, m]);
      else if (rec.full) pushFrame(rec, ownFrame(rec, m));
    }
    return;
  }
  const rec = store.runs.get(m.run);
  if (!rec) return;
  if (rec.loading || (rec.full && rec.stale)) {
    rec.pending.push([name, m]);
    return;
  }
  if (!rec.full) {
    if (name === "proc" && m.kind === "start") rec.process_count += 1;
    return;
  }
  applyDetail(rec, name, m);
}

function applyDetail(rec, name, m) {
  if (name === "proc") upsertProc(rec, procFromMessage(m, rec));
  else if (name === "output") pushOutput(rec, m);
  else if (name === "event") pushEvent(rec, m);
  else if (name === "stacks") pushStacks(rec, m);
  else if (name === "metrics") {
    if (isLive(rec)) pushFrame(rec, ownFrame(rec, m));
  }
}

/** Merge a Run fetched with GET /api/runs/<id>[?since=] into its record. */
export function mergeFetched(rec, data) {
  applySummary(data);
  const procs = [...(data.processes || [])].sort((a, b) => (a.started_at - b.started_at) || (a.pid - b.pid));
  for (const p of procs) upsertProc(rec, p);
  for (const l of data.output || []) pushOutput(rec, l);
  for (const e of data.events || []) pushEvent(rec, e);
  for (const f of data.metrics || []) pushFrame(rec, f);
  for (const s of data.stacks || []) pushStacks(rec, s);
  if (data.marks) rec.marks = data.marks;
  // Only the full Run carries a watched program's source (summaries stay small).
  if (data.source !== undefined) rec.source = data.source;
  if (data.output_dropped !== undefined) rec.output_dropped = data.output_dropped;
  rec.version += 1;
}

/** Fetch a run's full detail (or what changed after `since`), then replay what came meanwhile. */
export async function loadRun(id, since = 0) {
  const rec = ensureRun(id);
  if (rec.loading) return rec;
  if (rec.full && !since && !rec.stale) return rec;
  rec.loading = true;
  // Whatever was queued reached us before this request left: the answer includes it.
  rec.pending = [];
  try {
    const res = await fetch(`/api/runs/${encodeURIComponent(id)}${since ? `?since=${since}` : ""}`);
    if (res.status === 404) {
      store.runs.delete(id);
      return null;
    }
    if (!res.ok) throw new Error(`GET run ${id}: ${res.status}`);
    mergeFetched(rec, await res.json());
    rec.full = true;
  } finally {
    rec.loading = false;
    rec.stale = false;
    const pending = rec.pending;
    rec.pending = [];
    if (rec.full) for (const [name, m] of pending) applyDetail(rec, name, m);
    else for (const [name, m] of pending) if (name !== "metrics") applyLive(name, m);
    trimFullRuns();
    invalidate();
  }
  return rec;
}

/** Keep memory bounded over a long session: only a few runs keep their full detail. */
function trimFullRuns() {
  const keep = new Set([store.selectedRun, store.compareWith]);
  const full = runList().filter((r) => r.full && !isLive(r) && !keep.has(r.id));
  for (const rec of full.slice(MAX_FULL_RUNS)) {
    Object.assign(rec, { full: false, stale: false, procs: new Map(), nextColour: 1, output: [], events: [], frames: [],
      marks: [], stacks: [], lastOutSeq: 0, lastEventSeq: 0, lastFrameSeq: 0, lastStacksSeq: 0 });
  }
}

// ---- what the panels draw --------------------------------------------------------------------

function byTime(items, cut) {
  if (cut === null) return items;
  // Items arrive in seq order, which is time order up to a few ms; a scan is cheap enough here.
  return items.filter((x) => x.t <= cut);
}

/**
 * The selected run as panels should show it: at the latest instant, or (replay) at the scrubbed
 * time, where only what had happened by then is visible.
 */
export function viewOf(rec, scrub = null) {
  if (!rec) return null;
  const live = isLive(rec);
  const t0 = rec.started_at ?? serverNow();
  const tEndRun = rec.ended_at ?? (live ? serverNow() : (rec.frames.at(-1)?.t ?? t0));
  const cut = !live && scrub !== null && scrub < tEndRun ? Math.max(scrub, t0) : null;
  const tNow = cut ?? tEndRun;
  const procs = [];
  for (const p of rec.procs.values()) {
    const start = p.started_at ?? t0;
    if (cut !== null && start > cut) continue;
    if (cut !== null && p.ended_at !== null && p.ended_at !== undefined && p.ended_at > cut) {
      procs.push({ ...p, ended_at: null, exitcode: null, end: null });
    } else {
      procs.push(p);
    }
  }
  const frames = byTime(rec.frames, cut);
  const replaying = cut !== null;
  return {
    rec, live, replaying, t0, tNow, tEndRun,
    // x range shared by every time axis: the last minute while live, the whole run otherwise.
    xMin: live ? Math.max(0, tNow - t0 - LIVE_WINDOW_S) : 0,
    xMax: live ? Math.max(tNow - t0, 1) : Math.max(tEndRun - t0, 0.2),
    procs,
    output: byTime(rec.output, cut),
    events: byTime(rec.events, cut),
    stacks: byTime(rec.stacks, cut),
    frames,
    lastFrame: frames.at(-1) || null,
    state: rec.state,
    result: replaying ? undefined : rec.result,
    findings: replaying ? [] : rec.findings || [],
    error: replaying ? null : rec.error,
    key: `${rec.id}:${rec.version}:${cut}:${live ? Math.floor(tNow * 4) : ""}`,
  };
}

export function currentView() {
  const rec = store.selectedRun ? store.runs.get(store.selectedRun) : null;
  return viewOf(rec && rec.full ? rec : null, store.scrub);
}

/** The newest run of a lesson (null when it has none yet). */
export function latestRunOf(lessonId) {
  return runList().find((r) => r.lesson === lessonId && r.kind !== "watch") || null;
}

/**
 * Show a run, and the lesson it is a run of: header, code, explanation and run always agree.
 * A watched program (no lesson) clears the lesson, so no lesson's code sits next to it.
 */
export function selectRun(id, { follow = null } = {}) {
  if (follow !== null) store.follow = follow;
  if (store.selectedRun !== id) {
    store.scrub = null;
    store.highlight = { hover: null, pinned: null };
  }
  store.selectedRun = id;
  const rec = id ? store.runs.get(id) : null;
  if (rec && rec.lesson && store.lessonById.has(rec.lesson)) store.selectedLesson = rec.lesson;
  else if (rec && (rec.kind === "watch" || !rec.lesson)) store.selectedLesson = null;
  if (id) loadRun(id);
  invalidate();
}

/** The pid highlighted in every panel: the one pointed at, else the one clicked. */
export function highlighted() {
  return store.highlight.hover ?? store.highlight.pinned;
}
