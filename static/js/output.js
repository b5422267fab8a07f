// Every printed line, prefixed and coloured by the process that printed it. Lines are appended,
// not re-rendered; the DOM keeps the latest MAX_LINES.
import { $, el, fmtNum, procBadge } from "./util.js";

const MAX_LINES = 1500;
let shown = { run: null, cut: null, count: 0, colours: "" };

function line(l, procs, t0) {
  return el("div", { class: `line${l.stream === "err" ? " err" : ""}`, "data-pid": l.pid },
    el("span", { class: "t num" }, fmtNum(l.t - t0, 2)),
    procBadge(procs.get(l.pid), l.pid),
    el("span", { class: "text" }, l.text));
}

export function render(view) {
  const box = $("output");
  if (!view) {
    if (shown.run !== null || !box.children.length) box.replaceChildren(el("p", { class: "empty" }, "What the processes print appears here, labelled by pid."));
    shown = { run: null, cut: null, count: 0, colours: "" };
    return;
  }
  const procs = new Map(view.procs.map((p) => [p.pid, p]));
  const cut = view.replaying ? view.tNow : null;
  // A line printed before its process's birth message arrived is redrawn once the colour is known.
  const colours = view.procs.length + ":" + document.documentElement.dataset.theme;
  const atBottom = box.scrollHeight - box.scrollTop - box.clientHeight < 30;
  const lines = view.output;
  if (shown.run !== view.rec.id || shown.cut !== cut || shown.colours !== colours || lines.length < shown.count) {
    box.replaceChildren(...lines.slice(-MAX_LINES).map((l) => line(l, procs, view.t0)));
    if (!lines.length) box.replaceChildren(el("p", { class: "empty" }, view.replaying ? "Nothing printed yet at this time." : "Nothing printed yet."));
  } else if (lines.length > shown.count) {
    if (shown.count === 0) box.replaceChildren();
    box.append(...lines.slice(Math.max(shown.count, lines.length - MAX_LINES)).map((l) => line(l, procs, view.t0)));
    while (box.childElementCount > MAX_LINES) box.firstElementChild.remove();
  }
  if (view.rec.output_dropped && !box.querySelector(".dropped")) {
    box.prepend(el("p", { class: "dropped" }, `${view.rec.output_dropped} earlier lines were not kept.`));
  }
  shown = { run: view.rec.id, cut, count: lines.length, colours };
  if (atBottom) box.scrollTop = box.scrollHeight;
}
