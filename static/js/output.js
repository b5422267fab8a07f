// Every printed line, prefixed and coloured by the process that printed it. Lines are appended,
// not re-rendered; the DOM keeps the latest MAX_LINES.
import { $, el, fmtNum, procBadge } from "./util.js";

const MAX_LINES = 1500;
let shown = { run: null, cut: null, count: 0, colours: "" };

// Whether the reader is at the bottom (then new lines keep it there). Reading the box's
// scrollHeight in render() forced the layout every other panel had just dirtied (a few ms with
// 256 processes), and again when scrolling after the append. Instead "at the bottom" is learnt
// when the reader scrolls or the box is resized, and the scroll to the new bottom is made right
// after the browser's own layout of the frame (a ResizeObserver callback), where it is cheap.
let atBottom = true;
let follow = false;          // lines were written while at the bottom: scroll there after layout
let watcher = null;
const observed = new Set();  // the last line written, observed once so the callback comes

function measureBottom(box) {
  atBottom = box.scrollHeight - box.scrollTop - box.clientHeight < 30;
}

function watch(box) {
  box.addEventListener("scroll", () => {
    measureBottom(box);
    if (!atBottom) follow = false;    // the reader scrolled up: stay where they are
  }, { passive: true });
  watcher = new ResizeObserver(() => {
    if (follow) {
      follow = false;
      box.scrollTop = box.scrollHeight;
      atBottom = true;
    } else measureBottom(box);
    for (const n of observed) watcher.unobserve(n);
    observed.clear();
  });
  watcher.observe(box);
}

/** Scroll to the bottom once this frame is laid out (observing an element reports it once). */
function stickAfterLayout(box) {
  follow = true;
  const last = box.lastElementChild;
  if (last && !observed.has(last)) {
    observed.add(last);
    watcher.observe(last);
  }
}

function line(l, procs, t0) {
  return el("div", { class: `line${l.stream === "err" ? " err" : ""}`, "data-pid": l.pid },
    el("span", { class: "t num" }, fmtNum(l.t - t0, 2)),
    procBadge(procs.get(l.pid), l.pid),
    el("span", { class: "text" }, l.text));
}

export function render(view) {
  const box = $("output");
  if (!watcher) watch(box);
  if (!view) {
    if (shown.run !== null || !box.children.length) box.replaceChildren(el("p", { class: "empty" }, "What the processes print appears here, labelled by pid."));
    shown = { run: null, cut: null, count: 0, colours: "" };
    return;
  }
  const procs = new Map(view.procs.map((p) => [p.pid, p]));
  const cut = view.replaying ? view.tNow : null;
  // A line printed before its process's birth message arrived is redrawn once the colour is known.
  const colours = view.procs.length + ":" + document.documentElement.dataset.theme;
  const wasAtBottom = atBottom;
  let wrote = false;
  const lines = view.output;
  if (shown.run !== view.rec.id || shown.cut !== cut || shown.colours !== colours || lines.length < shown.count) {
    wrote = true;
    box.replaceChildren(...lines.slice(-MAX_LINES).map((l) => line(l, procs, view.t0)));
    if (!lines.length) box.replaceChildren(el("p", { class: "empty" }, view.replaying ? "Nothing printed yet at this time." : "Nothing printed yet."));
  } else if (lines.length > shown.count) {
    wrote = true;
    if (shown.count === 0) box.replaceChildren();
    box.append(...lines.slice(Math.max(shown.count, lines.length - MAX_LINES)).map((l) => line(l, procs, view.t0)));
    while (box.childElementCount > MAX_LINES) box.firstElementChild.remove();
  }
  if (view.rec.output_dropped && !box.querySelector(".dropped")) {
    wrote = true;
    box.prepend(el("p", { class: "dropped" }, `${view.rec.output_dropped} earlier lines were not kept.`));
  }
  shown = { run: view.rec.id, cut, count: lines.length, colours };
  if (wasAtBottom && wrote) stickAfterLayout(box);
}
