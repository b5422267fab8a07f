// Where is it stuck? The Stacks button (key t) and a per-process row action take a Snapshot of
// the shown live run (POST /api/runs/<id>/stacks); the panel shows each process's threads with
// the user's own frames in full strength, library frames muted and the innermost frame first-
// class; a stalled run gets a banner naming where each process waits. Works in replay: the
// Snapshots kept with the run are shown as they were at the scrubbed time.
import { store, invalidate, isLive, pushStacks } from "./store.js";
import { $, el, fmtDuration } from "./util.js";
import { markLine } from "./code.js";
import { watchedRun } from "./program.js";

const CPU_IDLE = 2;     // % of one core: what the server's stall detector counts as no work
const DUMP_WINDOW = 0.5; // s after a Snapshot whose CPU is the dump's (stall.py DUMP_WINDOW)
const END_WINDOW = 0.1;  // s: a reading this close to a process's end is its exit's, not work

const STATE_WORDS = { R: "running", S: "sleeping", D: "disk sleep", T: "stopped", t: "tracing stop",
  Z: "zombie", X: "dead", I: "idle" };

let busy = false;
let status = "";
let focusPid = null;     // the process whose row action asked, shown first and marked
let pickedSeq = null;    // a Snapshot chosen in the picker; null: the newest one
let panelKey = null;
let bannerKey = null;
let shownRun = null;

/** Take a Snapshot of the shown run now (the answer also arrives as a `stacks` message). */
export async function take(pid = null) {
  const rec = store.runs.get(store.selectedRun);
  if (busy || !rec || !isLive(rec) || store.role !== "presenter") return;
  busy = true;
  focusPid = pid;
  pickedSeq = null;
  status = "taking stacks…";
  invalidate();
  try {
    const res = await fetch(`/api/runs/${encodeURIComponent(rec.id)}/stacks`, { method: "POST" });
    const body = await res.json().catch(() => ({}));
    if (res.ok) {
      pushStacks(rec, body);
      status = "";
    } else {
      status = body.error || `the server answered ${res.status}`;
    }
  } catch (err) {
    status = `could not take stacks: ${err.message}`;
  } finally {
    busy = false;
    invalidate();
  }
}

/** The innermost frame of the user's own code in a thread (null: library frames only). */
export function userFrame(thread) {
  for (let i = thread.frames.length - 1; i >= 0; i--) if (!thread.frames[i].library) return thread.frames[i];
  return null;
}

function where(frame) {
  return `${shortFile(frame.file)}:${frame.line ?? "?"} in ${frame.function}`;
}

function shortFile(path) {
  return path.split("/").slice(-2).join("/");
}

/** What one line of the banner says about a process: its innermost user frame, or the kernel's word. */
function waitingLine(proc) {
  const threads = [...proc.threads].sort((a, b) => (b.main ? 1 : 0) - (a.main ? 1 : 0));
  for (const t of threads) {
    const f = userFrame(t);
    if (!f) continue;
    // The user's line, then the call it waits in, if that is deeper (join, a lock, a pipe...)
    // (mpdash's own in-run wrappers, e.g. of os.waitpid, are not where the program waits)
    const inner = [...t.frames].reverse().find((fr) => !fr.file.includes("/mpdash/inrun/")) || t.frames.at(-1);
    const deeper = inner !== f ? ` → waiting in ${inner.function} (${shortFile(inner.file)}:${inner.line ?? "?"})` : "";
    return `${where(f)}${deeper}${t.main ? "" : ` (thread ${t.name || t.id})`}`;
  }
  const inner = threads[0]?.frames.at(-1);
  if (inner) return where(inner);
  const kernel = [proc.wchan && `in ${proc.wchan}`, proc.syscall && proc.syscall !== "running" && `syscall ${proc.syscall}`].filter(Boolean).join(", ");
  return `${proc.python ? "no Python stack" : "not Python"}${kernel ? ` — ${kernel}` : ""}`;
}

/** Did the run make progress after time t (what the server's stall detector watches)? */
function progressedAfter(view, t) {
  if (view.output.some((l) => l.t > t)) return true;
  if (view.events.some((e) => e.t > t && e.kind !== "stall")) return true;
  // A process the server killed (Stop, a limit) did not progress: the run was stopped stuck.
  if (view.procs.some((p) => (p.started_at ?? 0) > t || ((p.ended_at ?? 0) > t && p.end !== "killed"))) return true;
  // The CPU a process spends dumping its stacks is ours, not the program's (as on the server).
  const dumping = (ft) => view.stacks.some((s) => ft >= s.t && ft <= s.t + DUMP_WINDOW);
  // Nor is the last reading of a process as it ends (taken the instant its exit is seen).
  const endOf = new Map(view.procs.map((p) => [p.pid, p.ended_at ?? null]));
  const ending = (pid, ft) => endOf.get(pid) !== null && endOf.get(pid) !== undefined && endOf.get(pid) <= ft + END_WINDOW;
  return view.frames.some((f) => f.t > t && !dumping(f.t)
    && f.cpu.some((c, i) => c >= CPU_IDLE && !ending(f.pid[i], f.t)));
}

function renderBanner(view) {
  const banner = $("stall-banner");
  const snap = view ? [...view.stacks].reverse().find((s) => s.reason === "stall") : null;
  const stuck = snap && !progressedAfter(view, snap.t);
  const key = stuck ? `${snap.seq}:${Math.floor(view.tNow)}` : "none";
  if (key === bannerKey) return;
  bannerKey = key;
  banner.hidden = !stuck;
  if (!stuck) {
    banner.replaceChildren();
    return;
  }
  const seconds = (snap.stalled_for || 0) + Math.max(0, view.tNow - snap.t);
  banner.dataset.seq = snap.seq;
  banner.replaceChildren(
    el("strong", { class: "stall-head" }, `stuck for ${Math.round(seconds)} s — where each process is waiting`),
    el("ul", { class: "stall-lines" }, ...snap.processes.map((p) => el("li", { "data-pid": p.pid },
      el("span", { class: "num" }, String(p.pid)), " ", el("span", { class: "pname" }, p.name || ""), ": ",
      el("code", {}, waitingLine(p))))));
}

function frameItem(frame, innermost) {
  const cls = `frame${frame.library ? " lib" : " own"}${innermost ? " innermost" : ""}`;
  const text = [el("span", { class: "fn" }, frame.function), " ",
    el("span", { class: "loc" }, `${shortFile(frame.file)}:${frame.line ?? "?"}`)];
  // A frame in the shown code's file: the lesson's, or the watched program's own script.
  if (frame.line && (frame.lesson || (frame.file && watchedRun()?.source?.path === frame.file))) {
    return el("li", { class: cls, "data-testid": "stack-frame", title: frame.file },
      el("button", { type: "button", class: "link frame-link", "data-testid": "frame-link", "data-line": frame.line,
        title: "Show this line in the code", onclick: () => markLine(frame.line) }, ...text));
  }
  return el("li", { class: cls, "data-testid": "stack-frame", title: frame.file }, ...text);
}

function threadBlock(thread) {
  const frames = thread.frames;
  return el("div", { class: "stack-thread", "data-thread": thread.id, "data-main": thread.main ? "1" : "0" },
    el("div", { class: "thread-head" }, thread.main ? "MainThread" : thread.name || `thread ${thread.id}`,
      el("span", { class: "sub" }, ` ${frames.length} frame${frames.length === 1 ? "" : "s"}, innermost last`)),
    frames.length
      ? el("ol", { class: "frames" }, ...frames.map((f, i) => frameItem(f, i === frames.length - 1)))
      : el("p", { class: "sub" }, "no Python frame"));
}

function processBlock(proc, origin) {
  const kernel = [STATE_WORDS[proc.state] || proc.state, proc.wchan && `in ${proc.wchan}`,
    proc.syscall && proc.syscall !== "running" && `syscall ${proc.syscall}`].filter(Boolean).join(" · ");
  return el("article", { class: `stack-proc${proc.pid === focusPid ? " focus" : ""}`, "data-testid": "stack-proc",
    "data-pid": proc.pid, "data-python": proc.python ? "1" : "0" },
    el("header", {}, el("strong", { class: "num" }, String(proc.pid)), " ", el("span", { class: "pname" }, proc.name || ""),
      el("span", { class: "sub" }, ` — ${kernel}`)),
    ...(proc.python
      ? (proc.threads.length ? proc.threads.map(threadBlock)
        : [el("p", { class: "sub" }, proc.state === "T" || proc.state === "t" ? "stopped: it cannot answer until it is continued" : "did not answer in time")])
      : [el("p", { class: "sub" }, "not a Python process (or not probed): only the kernel's view")]));
}

function renderPanel(view) {
  const panel = $("stacks-panel");
  const snaps = view ? view.stacks : [];
  const snap = snaps.find((s) => s.seq === pickedSeq) || snaps.at(-1) || null;
  const key = `${view?.rec.id}:${snaps.length}:${snap?.seq}:${status}:${focusPid}`;
  if (key === panelKey) return;
  panelKey = key;
  panel.hidden = !snap && !status;
  $("stacks-status").textContent = status ? ` · ${status}` : "";
  if (!snap) {
    $("stacks-pick").replaceChildren();
    $("stacks").replaceChildren();
    return;
  }
  const t0 = view.t0;
  $("stacks-pick").replaceChildren(...snaps.map((s) => el("button", {
    type: "button", class: `btn ghost small${s === snap ? " current" : ""}`, "aria-pressed": String(s === snap),
    "data-seq": s.seq, onclick: () => { pickedSeq = s.seq; focusPid = null; invalidate(); },
  }, `${s.reason === "stall" ? "stall" : "asked"} at ${fmtDuration(Math.max(0, s.t - t0))}`)));
  const procs = [...snap.processes].sort((a, b) => (b.pid === focusPid) - (a.pid === focusPid));
  $("stacks").replaceChildren(...procs.map((p) => processBlock(p, t0)));
  $("stacks").dataset.seq = snap.seq;
  if (focusPid !== null) $("stacks").querySelector(".stack-proc.focus")?.scrollIntoView({ block: "nearest" });
}

function onKey(e) {
  if (e.ctrlKey || e.metaKey || e.altKey || e.key !== "t") return;
  const t = e.target;
  if (t && (t.isContentEditable || ["INPUT", "SELECT", "TEXTAREA"].includes(t.tagName))) return;
  if ($("compare").open) return;
  e.preventDefault();
  take();
}

export function init() {
  $("stacks-btn").addEventListener("click", () => take());
  document.addEventListener("keydown", onKey);
  // The tree's per-process action (tree.js draws the buttons; one listener for all rows).
  $("proc-rows").addEventListener("click", (e) => {
    const button = e.target.closest("[data-testid='proc-stacks']");
    if (button) take(Number(button.dataset.pid));
  });
}

export function render(view) {
  const live = isLive(view?.rec) && !view.replaying;
  // Only on a live run: it costs the one-row top bar no room the rest of the time.
  $("stacks-btn").hidden = !live;
  $("stacks-btn").disabled = busy || !live || !store.connected;
  if ((view?.rec.id ?? null) !== shownRun) {   // another run: nothing of the last one's picks
    shownRun = view?.rec.id ?? null;
    focusPid = pickedSeq = null;
    status = "";
  }
  renderBanner(view);
  renderPanel(view);
}
