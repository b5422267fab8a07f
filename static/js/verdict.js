// The verdict strip: the one line a class reads off the projector. Before Run it asks the
// lesson's question (predict), while the run is live it shows its progress, and when the run
// ends it states the run's headline finding (written by the server from the run's numbers).
import { store, isLive, serverNow } from "./store.js";
import { SUMMARY_ID } from "./catalog.js";
import { $, fmtDuration, pyJson } from "./util.js";

const SHAPE = { finished: "✓", failed: "✕", stopped: "■", starting: "●", running: "●" };
const MAX_RESULT_CHARS = 120;   // a longer result is for the answer card, not the strip
let lastKey = null;
let askOpen = false;            // the question under a verdict, one click away
let askFor = null;              // ...per run: a new run starts with it folded again

function plural(n, one, many = `${one}s`) {
  return `${n} ${n === 1 ? one : many}`;
}

/** The run's headline Finding: the one marked, else (a run stored before headlines) none. */
export function headlineOf(rec) {
  return (rec?.findings || []).find((f) => f.headline) || null;
}

/** "3 processes alive · 4 of 12 items done": what a live run has done so far, from its data. */
export function progressOf(view) {
  const parts = [];
  const alive = view.procs.filter((p) => p.ended_at === null || p.ended_at === undefined).length;
  parts.push(`${plural(alive, "process", "processes")} alive`);
  const ended = view.procs.length - alive;
  if (ended) parts.push(`${ended} ended`);
  let tasks = 0;
  let items = 0;
  let summarised = false;
  for (const e of view.events) {
    if (e.kind === "task_end") {
      tasks += 1;
      items += e.items || 1;
    } else if (e.kind === "traffic" && e.tasks_ended) {
      tasks += e.tasks_ended;
      summarised = true;      // counts of tasks, not of the items inside them
    }
  }
  // The total is known when the lesson names it (its `items` parameter) and every task end
  // carried its item count; otherwise only what was done is said.
  const total = view.rec.params?.items;
  if (!summarised && items && Number.isInteger(total)) parts.push(`${items} of ${total} items done`);
  else if (tasks) parts.push(`${plural(tasks, "task")} done`);
  return parts.join(" · ");
}

function lastLine(text) {
  const lines = String(text || "").trim().split("\n").filter((l) => l.trim());
  return lines.at(-1) || "";
}

function ended(rec) {
  const took = rec.ended_at && rec.started_at ? fmtDuration(rec.ended_at - rec.started_at) : "";
  const word = rec.state === "finished" ? `finished in ${took}` : `${rec.state} after ${took}`;
  const top = headlineOf(rec);
  let text = top?.text;
  if (!text && rec.state !== "finished") text = lastLine(rec.error) || `the run ${rec.state}`;
  if (!text) text = rec.findings?.[0]?.text || "";
  let sub = "";
  if (rec.result !== null && rec.result !== undefined) {
    const shown = pyJson(rec.result);
    if (shown.length <= MAX_RESULT_CHARS) sub = `result ${shown}`;
  }
  if (!text) {
    text = sub ? sub.replace(/^result /, "main() returned ") : "main() returned None";
    sub = "";
  }
  return { mode: "verdict", state: rec.state, tag: `${SHAPE[rec.state] || ""} ${word}`, text, sub, headline: top?.key || "" };
}

/** What the strip says now: {mode, state, tag, text, sub, question, headline}. */
export function verdictOf(view) {
  const lesson = store.lessonById.get(store.selectedLesson);
  const rec = view?.rec;
  const ofLesson = rec && (rec.kind === "watch" || rec.lesson === store.selectedLesson);
  const question = ofLesson && rec.kind === "watch" ? "" : lesson?.predict || "";
  if (!ofLesson) {
    if (store.selectedLesson === SUMMARY_ID || !lesson) return null;
    // A viewer cannot press Run: the class is asked to predict, the presenter is reminded how to go on.
    const tag = store.role === "presenter" ? "Predict, then press Run" : "Predict";
    return { mode: "predict", state: "idle", tag, text: question, sub: "", question: "", headline: "" };
  }
  if (isLive(rec)) {
    const since = rec.started_at ? fmtDuration(Math.max(0, serverNow() - rec.started_at)) : "";
    return { mode: "live", state: rec.state, tag: `${SHAPE[rec.state]} ${rec.state} ${since}`, text: progressOf(view), sub: "", question, headline: "" };
  }
  return { ...ended(rec), question };
}

function set(node, text) {
  if (node.textContent !== text) node.textContent = text;
}

export function init() {
  $("verdict-ask").addEventListener("click", () => {
    askOpen = !askOpen;
    lastKey = null;
    render(null, true);
  });
}

let lastView = null;
export function render(view, again = false) {
  if (again) view = lastView;
  lastView = view;
  const v = verdictOf(view);
  const strip = $("verdict");
  const runId = view?.rec?.id || null;
  if (runId !== askFor) {
    askFor = runId;
    askOpen = false;
  }
  const presenting = document.documentElement.classList.contains("presenting");
  const key = JSON.stringify([v, askOpen, presenting]);
  if (key === lastKey) return;
  lastKey = key;
  strip.hidden = !v;
  if (!v) return;
  strip.dataset.mode = v.mode;
  // A screen reader hears the question and the verdict, not the progress ticking 4 times a second.
  strip.setAttribute("aria-live", v.mode === "live" ? "off" : "polite");
  strip.dataset.state = v.state;
  strip.dataset.headline = v.headline;
  strip.dataset.runId = v.mode === "predict" ? "" : runId || "";
  set($("verdict-tag"), v.tag);
  set($("verdict-text"), v.text);
  set($("verdict-sub"), v.sub);
  $("verdict-sub").hidden = !v.sub;
  // While live the question stays in view (the class is still predicting); after the run the
  // verdict replaces it, and the question is one click away.
  const ask = $("verdict-ask");
  ask.hidden = !(v.mode === "verdict" && v.question);
  ask.setAttribute("aria-expanded", String(askOpen));
  set(ask, askOpen ? "hide the question" : "the question");
  const q = $("verdict-question");
  set(q, v.question);
  q.hidden = !v.question || (v.mode === "verdict" ? !askOpen : !(v.mode === "live" && presenting));
}
