// The top bar stays one row: when the parameter fields do not fit next to everything else
// (a projector's 1280 px at presentation size, a lesson with many parameters), they fold into a
// popover behind one button that shows their values.
import { store } from "./store.js";
import { $ } from "./util.js";

let lastFit = null;

/** "workers 3 · items 5 · map": the form's current values, for the folded button. */
function summary() {
  const parts = [];
  for (const field of $("param-fields").querySelectorAll(".field")) {
    const input = field.querySelector("input, select");
    if (!input) continue;
    const value = input.type === "checkbox" ? (input.checked ? "on" : "off") : input.value;
    parts.push(`${field.dataset.param} ${value}`);
  }
  return parts.join(" · ");
}

function setOpen(open) {
  const bar = $("topbar");
  bar.classList.toggle("params-open", open && bar.classList.contains("folded"));
  $("params-toggle").setAttribute("aria-expanded", String(bar.classList.contains("params-open")));
  // The popover opens under its button; one with many fields (a lesson's, then the python
  // select) may be wider than the room to the right of it: it moves left, never off the page.
  const form = $("params");
  form.style.left = "";
  if (bar.classList.contains("params-open")) {
    const box = form.getBoundingClientRect();
    const over = Math.min(box.right - (document.documentElement.clientWidth - 8), box.left - 8);
    if (over > 0) form.style.left = `${-over}px`;
  }
}

export function closeParams() {
  setOpen(false);
}

/** Fold the parameters when the row would overflow; measured with every item at full width. */
export function fit(force = false) {
  const bar = $("topbar");
  const key = [window.innerWidth, document.documentElement.className, store.selectedLesson,
    $("param-fields").childElementCount, $("param-error").hidden, store.role,
    // A long run's clock grows from "9.99 s" to "2 min 5 s": measure again when its length does.
    $("elapsed").textContent.length, $("run-state").textContent].join("|");
  if (!force && key === lastFit) return;
  lastFit = key;
  const wasOpen = bar.classList.contains("params-open");
  bar.classList.remove("folded", "params-open");
  bar.classList.add("measuring");
  const tooWide = bar.scrollWidth > bar.clientWidth + 1;
  bar.classList.remove("measuring");
  bar.classList.toggle("folded", tooWide);
  setOpen(wasOpen);
}

export function render() {
  fit();
  const text = summary();
  const box = $("params-summary");
  if (box.textContent !== text) box.textContent = text || "no parameters";
  $("params-toggle").title = `Parameters: ${text || "none"}`;
  // An error names a field: a folded form opens so the field and its error are seen.
  if (!$("param-error").hidden && $("topbar").classList.contains("folded")) setOpen(true);
}

export function init() {
  $("params-toggle").addEventListener("click", () => setOpen(!$("topbar").classList.contains("params-open")));
  window.addEventListener("resize", () => fit());
  document.fonts?.ready.then(() => fit(true));
  document.addEventListener("keydown", (e) => {
    if (e.key === "Escape" && $("topbar").classList.contains("params-open")) {
      setOpen(false);
      $("params-toggle").focus();
    }
  });
  document.addEventListener("pointerdown", (e) => {
    if (!$("params-slot").contains(e.target)) setOpen(false);
  });
}
