// Which CPython a lesson runs on: a `python` select beside the lesson's parameters, filled from
// GET /api/system `pythons` ([{id, version, executable}], the server's own first). The choice is
// `store.python`, sent with `start` (socket.js); shown only when there is a choice to make.
import { store } from "./store.js";
import { $, el } from "./util.js";

const PREF = "mpdash.python";
let filledFrom = null;

function fill(pythons) {
  const box = $("python-field");
  const saved = localStorage.getItem(PREF);
  const chosen = pythons.some((p) => p.id === saved) ? saved : pythons[0].id;
  const select = el("select", {
    id: "python-select", name: "python", "data-testid": "python-select",
    onchange: (e) => {
      store.python = e.target.value;
      localStorage.setItem(PREF, store.python);
    },
  }, ...pythons.map((p) => el("option", { value: p.id, selected: p.id === chosen, title: p.executable },
    p.id === "server" ? `${p.version} (mpdash's)` : p.version)));
  box.replaceChildren(el("div", {
    class: "field field-choice", dataset: { param: "python" },
    title: "The CPython the lesson runs on (a free-threaded build shows threads scaling)",
  }, el("label", { for: "python-select" }, "python"), select));
  store.python = chosen;
}

export function render() {
  const pythons = store.system?.pythons;
  const list = Array.isArray(pythons) ? pythons : [];
  const key = JSON.stringify(list.map((p) => p.id));
  if (key === filledFrom) return;
  filledFrom = key;
  const box = $("python-field");
  // One interpreter (or a server without the list): nothing to choose, nothing to send.
  box.hidden = list.length < 2;
  if (list.length < 2) {
    box.replaceChildren();
    store.python = null;
    return;
  }
  fill(list);
}
