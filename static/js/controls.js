// Run / Stop, the run state in the header, the keyboard, and the look (theme, presentation).
import { store, invalidate, selectRun, applySummary, isLive, serverNow } from "./store.js";
import { startRun, stopRun } from "./socket.js";
import { readParams, showParamError, hideParamError, step, SUMMARY_ID } from "./catalog.js";
import { $, fmtDuration } from "./util.js";
import * as topbar from "./topbar.js";

const PREF_PRESENT = "mpdash.presentation";
const PREF_THEME = "mpdash.theme";
export const look = { version: 0 };   // bumps when theme or presentation changes: charts rebuild

function readPref(key) {
  try {
    return localStorage.getItem(key);
  } catch {
    return null;
  }
}

function writePref(key, value) {
  try {
    localStorage.setItem(key, value);
  } catch {
    // Private mode or storage disabled: the toggle still works for this visit.
  }
}

function applyLook() {
  const root = document.documentElement;
  const presenting = readPref(PREF_PRESENT) === "1";
  const stored = readPref(PREF_THEME);
  const dark = stored ? stored === "dark" : window.matchMedia?.("(prefers-color-scheme: dark)").matches;
  root.dataset.theme = dark ? "dark" : "light";
  root.classList.toggle("presenting", presenting);
  $("presentation-toggle").setAttribute("aria-pressed", String(presenting));
  $("theme-toggle").setAttribute("aria-pressed", String(!!dark));
  look.version += 1;
  invalidate();
}

export function togglePresentation() {
  writePref(PREF_PRESENT, document.documentElement.classList.contains("presenting") ? "0" : "1");
  applyLook();
}

export function toggleTheme() {
  writePref(PREF_THEME, document.documentElement.dataset.theme === "dark" ? "light" : "dark");
  applyLook();
}

let busy = false;

export async function run() {
  if (busy || store.role !== "presenter") return;
  if (store.selectedLesson === SUMMARY_ID) return;
  const form = readParams();
  if (form.error) {
    showParamError(form.error);
    return;
  }
  hideParamError();
  topbar.closeParams();
  busy = true;
  $("run-btn").disabled = true;
  store.perf.runClickedAt = performance.now();
  store.perf.firstWorkerMs = null;
  store.perf.firstRowMs = null;
  try {
    const answer = await startRun(form.lesson, form.params);
    if (!answer || answer.error) {
      showParamError(answer?.error || "the server refused to start the run");
      return;
    }
    store.perf.runId = answer.id;
    applySummary(answer);
    selectRun(answer.id, { follow: true });
  } finally {
    busy = false;
    $("run-btn").disabled = false;
    invalidate();
  }
}

export async function stop() {
  const rec = store.runs.get(store.selectedRun);
  if (!rec || !isLive(rec) || store.role !== "presenter") return;
  $("stop-btn").disabled = true;
  const answer = await stopRun(rec.id);
  if (answer && answer.error) showParamError(`Stop: ${answer.error}`);
  else if (answer) applySummary(answer);
  invalidate();
}

function onKey(e) {
  if (e.ctrlKey || e.metaKey || e.altKey) return;
  const t = e.target;
  if (t && (t.isContentEditable || ["INPUT", "SELECT", "TEXTAREA"].includes(t.tagName))) return;
  if ($("compare").open) return;
  const k = e.key;
  if (k === "r") run();
  else if (k === "s") stop();
  else if (k === "p") togglePresentation();
  else if (k === "j" || k === "ArrowDown") step(1);
  else if (k === "k" || k === "ArrowUp") step(-1);
  else return;
  e.preventDefault();
}

export function init() {
  applyLook();
  topbar.init();
  $("run-btn").addEventListener("click", run);
  $("stop-btn").addEventListener("click", stop);
  $("params").addEventListener("submit", (e) => {
    e.preventDefault();
    run();
  });
  $("presentation-toggle").addEventListener("click", togglePresentation);
  $("theme-toggle").addEventListener("click", toggleTheme);
  document.addEventListener("keydown", onKey);
  // The elapsed clock of a live run ticks even when no message arrives.
  setInterval(() => {
    const rec = store.runs.get(store.selectedRun);
    if (isLive(rec)) invalidate();
  }, 250);
}

export function render(view) {
  const presenter = store.role === "presenter";
  $("controls").hidden = !presenter;
  // A viewer cannot start a run, so fields it could edit would only mislead.
  for (const field of $("params").elements) if (field.disabled === presenter) field.disabled = !presenter;
  const rec = view?.rec;
  const live = isLive(rec);
  $("run-btn").disabled = busy || store.selectedLesson === SUMMARY_ID || !store.connected;
  $("stop-btn").disabled = !live;
  const state = rec ? rec.state : "idle";
  const word = $("run-state");
  if (word.textContent !== state) word.textContent = state;
  $("state-dot").className = `state-dot st-${state}`;
  document.body.dataset.runState = state;
  let elapsed = "";
  if (rec && rec.started_at) {
    const end = view.replaying ? view.tNow : rec.ended_at ?? serverNow();
    elapsed = fmtDuration(Math.max(0, end - rec.started_at));
    if (view.replaying) elapsed = `replay ${elapsed}`;
  }
  $("elapsed").textContent = elapsed;
  const hz = store.system?.sample_hz;
  $("hz").textContent = hz ? `${hz} Hz` : "";
  $("hz").title = store.system ? `${store.system.cores} cores · ${store.system.cpu_model} · Python ${store.system.python}` : "";
  topbar.render();
}
