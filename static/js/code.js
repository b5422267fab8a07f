// The lesson side: its source (highlighted), explanation and "predict" question; and for the
// shown run: the result, the findings in plain words, the error if any, and the downloads.
import hljs from "/static/vendor/highlight/core.min.js";
import python from "/static/vendor/highlight/python.min.js";
import { store } from "./store.js";
import { $, el, pyJson, fmtDuration } from "./util.js";
import { watchedRun } from "./program.js";

hljs.registerLanguage("python", python);

let codeFor = null;
let answerKey = null;

/** A watched program's source as the Run carries it ({path, text, truncated}, read when it
 * started), or what stands in for it when its command runs no Python file. */
function renderProgram(rec) {
  const key = `watch:${rec.id}:${rec.source ? "source" : rec.full ? "none" : "loading"}`;
  if (key === codeFor) return;
  codeFor = key;
  const code = $("code");
  const src = rec.source;
  code.dataset.lesson = "";
  code.dataset.source = src ? src.path : "";
  if (src) code.innerHTML = numberedLines(hljs.highlight(src.text, { language: "python" }).value);
  else code.textContent = "";
  $("code-path").hidden = false;
  $("code-path").textContent = src
    ? `${src.path === "-c" ? "the program given with python -c" : src.path}${src.truncated ? " (the first 64 KiB: the file is longer)" : ""}`
    : rec.full ? "This command runs no Python file of its own (python FILE.py or -m MODULE) to show." : "";
  // A program has no lesson text: its explanation and "predict" question are not its own.
  $("explanation").replaceChildren();
  $("explanation").hidden = true;
  $("predict").replaceChildren();
  $("predict").hidden = true;
}

function renderLesson() {
  const watched = watchedRun();
  if (watched) {
    renderProgram(watched);
    return;
  }
  const id = store.selectedLesson;
  if (id === codeFor) return;
  const lesson = store.lessonById.get(id);
  if (!lesson && id !== null) return;
  codeFor = id;
  if (!lesson) {
    // No lesson (a watched program was shown, and is no longer): no lesson's text either. A
    // watched program's own source is renderProgram's.
    $("code").textContent = "";
    $("code").dataset.lesson = "";
    $("code").dataset.source = "";
    $("code-path").hidden = true;
    $("explanation").replaceChildren();
    $("predict").replaceChildren();
    return;
  }
  const code = $("code");
  code.innerHTML = numberedLines(hljs.highlight(lesson.code, { language: "python" }).value);
  code.dataset.lesson = id;
  code.dataset.source = "";
  $("code-path").hidden = true;
  $("explanation").hidden = false;
  $("predict").hidden = false;
  $("explanation").replaceChildren(el("p", {}, lesson.explanation));
  $("predict").replaceChildren(
    el("span", { class: "predict-tag" }, "Predict"),
    el("p", {}, lesson.predict));
}

/** Highlighted HTML with each line in its own <span class="code-line" data-line="N"> (a stack frame
 * of the lesson's file points at one): spans hljs opened on an earlier line are closed at each
 * line's end and opened again on the next, so every line is well-formed on its own. */
function numberedLines(html) {
  const open = [];
  return html.split("\n").map((line, i) => {
    const reopened = open.join("");
    for (const tag of line.match(/<span[^>]*>|<\/span>/g) || []) {
      if (tag === "</span>") open.pop();
      else open.push(tag);
    }
    return `<span class="code-line" data-line="${i + 1}">${reopened}${line}${"</span>".repeat(open.length)}</span>`;
  }).join("\n");
}

/** Mark line `line` of the shown lesson's code and scroll it into view; false if it has none. */
export function markLine(line) {
  const code = $("code");
  code.querySelector(".code-line.marked")?.classList.remove("marked");
  const target = code.querySelector(`.code-line[data-line="${Number(line)}"]`);
  if (!target) return false;
  target.classList.add("marked");
  target.scrollIntoView({ block: "nearest" });
  return true;
}

function paramsText(params) {
  return Object.entries(params || {}).map(([k, v]) => `${k}=${v}`).join(" ");
}

function renderAnswer(view) {
  const rec = view?.rec;
  const key = rec ? `${rec.id}:${rec.seq}:${view.replaying}:${rec.state}` : "none";
  if (key === answerKey) return;
  answerKey = key;
  if (!rec) {
    $("run-title").textContent = "No run yet: pick a lesson and press Run.";
    $("result").textContent = "";
    $("findings").replaceChildren();
    $("run-error").hidden = true;
    $("downloads").hidden = true;
    return;
  }
  const lesson = store.lessonById.get(rec.lesson);
  $("run-title").replaceChildren(...[
    el("strong", {}, lesson ? lesson.title : rec.title || rec.lesson),
    el("span", { class: "sub" }, ` ${paramsText(rec.params)}`),
    rec.ended_at ? el("span", { class: "sub num" }, ` · ${fmtDuration(rec.ended_at - rec.started_at)}`) : null].filter(Boolean));
  const result = $("result");
  result.dataset.kind = rec.kind || "lesson";
  if (view.replaying) {
    result.textContent = "";
    result.dataset.pending = "replay";
    result.removeAttribute("data-none");
  } else if (rec.state === "starting" || rec.state === "running") {
    result.textContent = "";
    result.dataset.pending = "running";
    result.removeAttribute("data-none");
  } else {
    result.textContent = pyJson(rec.result);
    delete result.dataset.pending;
    // A bare "null" reads like a failure to someone who has not met JSON.
    result.toggleAttribute("data-none", rec.result === null || rec.result === undefined);
  }
  const findings = view.findings || [];
  $("findings").replaceChildren(...findings.map((f) => el("li", { "data-testid": `finding-${f.key}`, "data-value": typeof f.value === "object" ? JSON.stringify(f.value) : String(f.value) }, f.text)));
  if (!findings.length && !view.replaying && rec.ended_at) {
    $("findings").replaceChildren(el("li", { class: "empty" }, rec.kind === "watch"
      ? "Nothing recorded about this program's processes."
      : "This lesson measures nothing beyond its result."));
  }
  const err = $("run-error");
  err.hidden = !view.error;
  err.textContent = view.error || "";
  const dl = $("downloads");
  dl.hidden = false;
  $("dl-csv").href = `/api/runs/${encodeURIComponent(rec.id)}/metrics.csv`;
  $("dl-csv").setAttribute("download", `${rec.id}-metrics.csv`);
  $("dl-trace").href = `/api/runs/${encodeURIComponent(rec.id)}/trace.json`;
  $("dl-trace").setAttribute("download", `${rec.id}-trace.json`);
}

export function render(view) {
  renderLesson();
  renderAnswer(view);
}
