// The lesson list (grouped by tutorial section, the §11 summary map in its place, then §12's
// pitfalls) and the parameter form generated from the selected lesson's Param specs.
import { store, invalidate, latestRunOf, runList, selectRun } from "./store.js";
import { el, $ } from "./util.js";

export const SUMMARY_ID = "summary";
const edited = new Map();           // lesson id -> {name: raw value} the user typed
let formFor = null;

const RULES = [
  ["CPU-bound work (number crunching)", "processes: each has its own interpreter and GIL, so they use several cores", "threads-vs-processes"],
  ["I/O-bound work (network, disk, waiting)", "threads or asyncio: they wait cheaply; processes cost more to start and to talk to", "process-costs"],
  ["Sharing data between processes", "send messages (Queue, Pipe); shared Value/Array only with a lock", "race-condition"],
  ["A batch of independent items", "a Pool: a fixed set of workers reused for every task", "pool-map"],
  ["A crash in one worker", "stays in that process: the others and the main program carry on", "crash-isolation"],
  ["Background helpers", "daemon processes end when their main program ends — never rely on them finishing", "daemon"],
];

// §12: each pitfall and the fix its lesson shows with fixed=true.
const PITFALLS = [
  ["Joining a child that put a large item on a Queue", "get() everything first, then join()", "queue-deadlock"],
  ["Starting processes under spawn or forkserver", "keep the code that starts them under if __name__ == \"__main__\":", "main-guard"],
  ["Sending a function to a Pool", "define it at the top level of a module (or a functools.partial of one), never a lambda", "pickling"],
  ["Counting in a global from several processes", "each process changes its own copy: share a Value, or send results back", "globals-not-shared"],
  ["Forking a process that runs threads", "use forkserver or spawn (forkserver is the Linux default from Python 3.14)", "fork-with-threads"],
  ["Many tiny tasks in a Pool", "batch them (chunksize) so each message carries enough work", "pool-overhead"],
];
const SUMMARY_SECTION = 11;
const beforeSummary = (l) => Number(l.section) < SUMMARY_SECTION;

export async function loadLessons() {
  const res = await fetch("/api/lessons");
  if (!res.ok) throw new Error(`GET /api/lessons: ${res.status}`);
  store.lessons = await res.json();
  store.lessonById = new Map(store.lessons.map((l) => [l.id, l]));
  if (!store.selectedLesson && store.lessons.length) store.selectedLesson = store.lessons[0].id;
  renderList();
}

/** Lesson ids in list order, the §11 summary map between §10 and §12 (what j/k walk through). */
export function lessonOrder() {
  return [...store.lessons.filter(beforeSummary).map((l) => l.id), SUMMARY_ID,
    ...store.lessons.filter((l) => !beforeSummary(l)).map((l) => l.id)];
}

/**
 * Show a lesson and, beside it, its latest run (or none: the run panels then say so). Never the
 * previous lesson's run under this lesson's header and code.
 */
export function selectLesson(id) {
  if (id !== SUMMARY_ID && !store.lessonById.has(id)) return;
  store.selectedLesson = id;
  const run = id === SUMMARY_ID ? null : latestRunOf(id);
  if (run) selectRun(run.id, { follow: runList()[0]?.id === run.id });
  else selectRun(null, { follow: true });
  store.selectedLesson = id;
  invalidate();
}

export function step(delta) {
  const order = lessonOrder();
  const i = Math.max(0, order.indexOf(store.selectedLesson));
  const next = order[(i + delta + order.length) % order.length];
  selectLesson(next);
  document.querySelector(`[data-lesson-id="${next}"]`)?.focus();
}

function renderList() {
  const list = $("lesson-list");
  list.replaceChildren();
  const sections = new Map();
  for (const l of store.lessons) {
    if (!sections.has(l.section)) sections.set(l.section, { title: l.section_title, lessons: [] });
    sections.get(l.section).lessons.push(l);
  }
  const item = (id, label, summary) => el("li", {},
    el("button", {
      type: "button", class: "lesson-btn", "data-testid": `lesson-${id}`, dataset: { lessonId: id },
      title: summary || "", onclick: () => selectLesson(id),
    }, label));
  const summary = el("li", { class: "section" },
    el("div", { class: "section-h" }, el("span", { class: "sec-no" }, "§11"), " Summary"),
    el("ul", {}, item(SUMMARY_ID, "Which lesson shows what", "The ideas of the tutorial and the rules of thumb")));
  let summaryPlaced = false;
  for (const [section, group] of sections) {
    if (!summaryPlaced && Number(section) >= SUMMARY_SECTION) {
      list.append(summary);
      summaryPlaced = true;
    }
    list.append(el("li", { class: "section" },
      el("div", { class: "section-h" }, el("span", { class: "sec-no" }, `§${section}`), " ", group.title),
      el("ul", {}, ...group.lessons.map((l) => item(l.id, l.title, l.summary)))));
  }
  if (!summaryPlaced) list.append(summary);
}

function renderSummary() {
  const card = $("summary-card");
  const rows = store.lessons.map((l) => el("tr", {},
    el("td", { class: "num" }, `§${l.section}`),
    el("td", {}, el("button", { type: "button", class: "link", onclick: () => selectLesson(l.id) }, l.title)),
    el("td", {}, l.summary)));
  const ruleItems = (list) => list.map(([when, what, lesson]) => el("li", {},
    el("strong", {}, when), " → ", what,
    store.lessonById.has(lesson)
      ? el("span", {}, " (", el("button", { type: "button", class: "link", onclick: () => selectLesson(lesson) },
        store.lessonById.get(lesson).title), ")")
      : null));
  const pitfalls = PITFALLS.filter(([, , lesson]) => store.lessonById.has(lesson));
  card.replaceChildren(
    el("h2", {}, "§11 Summary: which lesson shows what"),
    el("table", { class: "summary-table" }, el("tbody", {}, ...rows)),
    el("h3", {}, "Rules of thumb"),
    el("ul", { class: "rules", "data-testid": "rules" }, ...ruleItems(RULES)),
    ...(pitfalls.length ? [
      el("h3", {}, "§12 When it goes wrong: the mistake → the fix (run each lesson, then tick fixed)"),
      el("ul", { class: "rules", "data-testid": "pitfall-rules" }, ...ruleItems(pitfalls))] : []));
}

function field(lesson, p) {
  const id = `param-${p.name}`;
  const saved = edited.get(lesson.id)?.[p.name];
  const value = saved !== undefined ? saved : p.default;
  const onInput = (e) => {
    const t = e.target;
    const v = t.type === "checkbox" ? t.checked : t.value;
    edited.set(lesson.id, { ...(edited.get(lesson.id) || {}), [p.name]: v });
    hideParamError();
  };
  let input;
  if (p.type === "bool") {
    input = el("input", { type: "checkbox", id, name: p.name, "data-testid": id, onchange: onInput });
    input.checked = !!value;
  } else if (p.type === "choice") {
    input = el("select", { id, name: p.name, "data-testid": id, onchange: onInput },
      ...(p.choices || []).map((c) => el("option", { value: c, selected: c === value }, c)));
  } else {
    input = el("input", {
      type: "number", id, name: p.name, "data-testid": id, inputmode: p.type === "int" ? "numeric" : "decimal",
      min: p.min ?? null, max: p.max ?? null, step: p.type === "int" ? 1 : "any", oninput: onInput,
      class: "num", "aria-describedby": `${id}-help`,
    });
    input.value = String(value);
    // As wide as its largest allowed value, so 60000000 is not cut and 4 wastes no room.
    const digits = Math.max(2, String(p.max ?? "").length, String(p.default).length, String(value).length, p.type === "float" ? 4 : 0);
    input.style.width = `calc(${digits}ch + 1.9rem)`;
  }
  const range = p.min !== null && p.max !== null && p.type !== "choice" && p.type !== "bool" ? ` ${p.min}–${p.max}` : "";
  // The help was only for screen readers; a tooltip tells everyone what the name means.
  return el("div", { class: `field field-${p.type}`, dataset: { param: p.name }, title: `${p.help}${range ? ` (${range.trim()})` : ""}` },
    el("label", { for: id }, p.name, p.unit ? el("span", { class: "unit" }, ` (${p.unit})`) : null),
    input,
    el("span", { id: `${id}-help`, class: "sr-only" }, `${p.help}.${range ? ` Allowed:${range}.` : ""}`));
}

function renderForm(lesson) {
  const box = $("param-fields");
  hideParamError();
  if (!lesson) {
    box.replaceChildren();
    return;
  }
  box.replaceChildren(...lesson.params.map((p) => field(lesson, p)));
  for (const node of box.querySelectorAll(".field")) {
    const p = lesson.params.find((q) => q.name === node.dataset.param);
    node.title = p.help + (p.min !== null && p.max !== null ? ` (${p.min}–${p.max}${p.unit ? " " + p.unit : ""})` : "");
  }
}

/** The form's values, typed per the spec: {params} or {error, field}. */
export function readParams() {
  const lesson = store.lessonById.get(store.selectedLesson);
  if (!lesson) return { error: "pick a lesson first" };
  const params = {};
  for (const p of lesson.params) {
    const input = $(`param-${p.name}`);
    if (!input) continue;
    if (p.type === "bool") params[p.name] = input.checked;
    else if (p.type === "choice") params[p.name] = input.value;
    else {
      const text = input.value.trim();
      const n = Number(text);
      if (text === "" || !Number.isFinite(n)) return { error: `param '${p.name}' must be a number`, field: p.name };
      params[p.name] = n;
    }
  }
  return { lesson: lesson.id, params };
}

/** Show an error next to the field it names (or under the form). */
export function showParamError(message) {
  const box = $("param-error");
  const named = /param '([^']+)'/.exec(message || "");
  const fieldNode = named ? document.querySelector(`.field[data-param="${CSS.escape(named[1])}"]`) : null;
  document.querySelectorAll(".field.invalid").forEach((n) => n.classList.remove("invalid"));
  if (fieldNode) {
    fieldNode.classList.add("invalid");
    fieldNode.querySelector("input,select")?.setAttribute("aria-invalid", "true");
    fieldNode.querySelector("input,select")?.setAttribute("aria-errormessage", "param-error");
    fieldNode.after(box);
  } else {
    $("params").append(box);
  }
  box.textContent = message;
  box.hidden = false;
}

export function hideParamError() {
  const box = $("param-error");
  box.hidden = true;
  box.textContent = "";
  document.querySelectorAll(".field.invalid").forEach((n) => {
    n.classList.remove("invalid");
    n.querySelector("input,select")?.removeAttribute("aria-invalid");
  });
}

let lastLesson = undefined;
let lastCount = -1;
export function render() {
  if (store.lessons.length !== lastCount) {
    lastCount = store.lessons.length;
    renderList();
    renderSummary();
  }
  const id = store.selectedLesson;
  for (const b of document.querySelectorAll(".lesson-btn")) {
    if (b.dataset.lessonId === id) b.setAttribute("aria-current", "true");
    else b.removeAttribute("aria-current");
  }
  // A watched program shown: the header is its own (its command is under it, program.js).
  const shown = store.selectedRun ? store.runs.get(store.selectedRun) : null;
  const watched = shown && shown.kind === "watch" ? shown : null;
  const key = watched ? `watch:${watched.id}:${watched.title}` : id;
  if (key === lastLesson) return;
  lastLesson = key;
  const summary = id === SUMMARY_ID && !watched;
  const lesson = store.lessonById.get(id);
  $("summary-card").hidden = !summary;
  $("lesson-card").hidden = summary;
  $("lesson-title").textContent = watched ? watched.title || "a program" : summary ? "Which lesson shows what" : lesson ? lesson.title : "";
  $("lesson-title").title = $("lesson-title").textContent;   // the whole command, when the bar cuts it
  $("lesson-section").textContent = watched ? "watched program" : summary ? "§11" : lesson ? `§${lesson.section} ${lesson.section_title}` : "";
  if (!summary && formFor !== id) {
    formFor = id;
    renderForm(lesson);
  }
  if (summary) {
    formFor = null;
    renderForm(null);
  }
}
