// One process highlighted in every panel at once: pointing at a legend item (or any pid badge)
// highlights it, clicking keeps it highlighted until clicked again. Panels only tag their
// elements with data-pid; this module marks the matching ones after each draw, and the process
// charts bring its line forward (identical lines, e.g. daemon workers, can then be told apart).
import { store, invalidate, highlighted } from "./store.js";
import * as charts from "./charts.js";

const PANELS = "#proc-rows tr[data-pid], #timeline .tl-lane[data-pid], #output .line[data-pid], [data-testid=legend-item][data-pid], #messages [data-testid=proc-badge][data-pid]";

function pidOf(target) {
  const item = target?.closest?.("[data-testid=legend-item][data-pid], [data-testid=proc-badge][data-pid]");
  if (!item || !item.dataset.pid) return null;
  const pid = Number(item.dataset.pid);
  return Number.isInteger(pid) ? pid : null;
}

export function init() {
  document.addEventListener("mouseover", (e) => {
    const pid = pidOf(e.target);
    if (pid !== store.highlight.hover) {
      store.highlight.hover = pid;
      invalidate();
    }
  });
  document.addEventListener("focusin", (e) => {
    const pid = pidOf(e.target);
    if (pid !== null) {
      store.highlight.hover = pid;
      invalidate();
    }
  });
  document.addEventListener("click", (e) => {
    const pid = pidOf(e.target);
    if (pid === null || !e.target.closest("[data-testid=legend-item]")) return;
    store.highlight.pinned = store.highlight.pinned === pid ? null : pid;
    invalidate();
  });
}

let marked = null;   // the pid marked after the previous draw

export function render(view) {
  const pid = view && view.procs.some((p) => p.pid === highlighted()) ? highlighted() : null;
  // Nothing highlighted before or now: no element carries a mark, so nothing to walk (the output
  // alone can hold 1500 lines, and this runs after every draw).
  if (pid === null && marked === null) return;
  marked = pid;
  document.body.classList.toggle("highlighting", pid !== null);
  document.body.dataset.highlight = pid ?? "";
  // Every draw may have rebuilt a panel: re-mark (cheap: a few hundred elements at most).
  for (const node of document.querySelectorAll(PANELS)) {
    const on = pid !== null && Number(node.dataset.pid) === pid;
    if (node.classList.contains("hl") !== on) node.classList.toggle("hl", on);
    if (node.dataset.testid === "legend-item") node.setAttribute("aria-pressed", String(store.highlight.pinned === Number(node.dataset.pid)));
  }
  charts.focus(pid);
}
