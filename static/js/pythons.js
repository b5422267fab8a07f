// Which CPython a lesson runs on: a `python` select at the end of the lesson's parameters, filled
// from GET /api/system `pythons` ([{id, version, executable}], the server's own first). The choice
// is `store.python`, sent with `start` (socket.js); shown only when there is a choice to make.
// catalog.js rebuilds the parameter fields for each lesson: the select is put back after them.
import { store, invalidate } from "./store.js";
import { $, el } from "./util.js";

const PREF = "mpdash.python";
let listKey = null;

function field(pythons) {
  const saved = store.python ?? localStorage.getItem(PREF);
  const chosen = pythons.some((p) => p.id === saved) ? saved : pythons[0].id;
  store.python = chosen;
  const select = el("select", {
    id: "python-select", name: "python", "data-testid": "python-select",
    onchange: (e) => {
      store.python = e.target.value;
      localStorage.setItem(PREF, store.python);
    },
  }, ...pythons.map((p) => el("option", { value: p.id, selected: p.id === chosen, title: p.executable },
    p.id === "server" ? `${p.version} (mpdash's)` : p.version)));
  return el("div", {
    class: "field field-choice field-python", dataset: { param: "python" },
    title: "The CPython the lesson runs on (a free-threaded build shows threads scaling)",
  }, el("label", { for: "python-select" }, "python"), select);
}

export function render() {
  const pythons = Array.isArray(store.system?.pythons) ? store.system.pythons : [];
  const box = $("param-fields");
  const present = box.querySelector('[data-param="python"]');
  const key = JSON.stringify(pythons.map((p) => [p.id, p.version]));
  // One interpreter (or a server without the list), or no lesson form: nothing to choose or send.
  if (pythons.length < 2 || !store.lessonById.has(store.selectedLesson)) {
    present?.remove();
    if (pythons.length < 2) store.python = null;
    return;
  }
  if (present && key === listKey && box.lastElementChild === present) return;
  listKey = key;
  present?.remove();
  box.append(field(pythons));
  invalidate();   // the top bar measures again whether its fields still fit in one row
}
