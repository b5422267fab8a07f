// The strip above the run panels: which run they show (its lesson, parameters, state, length),
// so charts, tree and timeline are never read as another lesson's; or, when the selected lesson
// has no run yet, an empty state that says so.
import { store, isLive, serverNow } from "./store.js";
import { $, el, fmtDuration } from "./util.js";
import { SUMMARY_ID } from "./catalog.js";

let lastKey = null;

export function paramsText(params) {
  return Object.entries(params || {}).map(([k, v]) => `${k}=${v}`).join(" ");
}

export function render(view) {
  const box = $("run-head");
  if (!box) return;
  const rec = view?.rec;
  const tick = rec && isLive(rec) ? Math.floor(serverNow() * 4) : "";
  const key = rec ? `${rec.id}:${rec.state}:${rec.seq}:${view.procs.length}:${tick}` : `none:${store.selectedLesson}`;
  if (key === lastKey) return;
  lastKey = key;
  if (!rec) {
    const lesson = store.lessonById.get(store.selectedLesson);
    box.dataset.runId = "";
    box.dataset.lesson = store.selectedLesson ?? "";
    box.replaceChildren(el("p", { class: "run-empty", "data-testid": "run-empty" },
      store.selectedLesson === SUMMARY_ID ? "The summary has no run of its own: pick a lesson to see one."
        : lesson ? `No run of “${lesson.title}” yet — press Run.` : "No run yet — pick a lesson and press Run."));
    return;
  }
  const lesson = store.lessonById.get(rec.lesson);
  const end = rec.ended_at ?? (isLive(rec) ? serverNow() : null);
  box.dataset.runId = rec.id;
  box.dataset.lesson = rec.lesson ?? "";
  box.replaceChildren(
    el("span", { class: "rh-kind" }, rec.kind === "watch" ? "watched program" : "run of"),
    el("strong", { class: "rh-title", "data-testid": "run-head-title" }, lesson ? lesson.title : rec.title || rec.command || rec.lesson || rec.id),
    el("span", { class: "rh-params num", "data-testid": "run-head-params" }, paramsText(rec.params) || (rec.kind === "watch" ? "" : "defaults")),
    el("span", { class: `rh-state rs-${rec.state}` }, rec.state),
    el("span", { class: "rh-meta num" }, [end && rec.started_at ? fmtDuration(Math.max(0, end - rec.started_at)) : "",
      `${view.procs.length} process${view.procs.length === 1 ? "" : "es"}`].filter(Boolean).join(" · ")));
}
