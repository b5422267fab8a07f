// A watched program shown as a program (mpdash watch): the header says what ran and where — its
// command line and folder — instead of the selected lesson's; the code panel (code.js) shows its
// own source, and the findings the engine computed from it.
import { store } from "./store.js";
import { $, el } from "./util.js";

let lastKey = null;

/** The shown run when it is a watched program, else null. */
export function watchedRun() {
  const rec = store.selectedRun ? store.runs.get(store.selectedRun) : null;
  return rec && rec.kind === "watch" ? rec : null;
}

/** "python my_script.py --n 3", quoted as a shell would need it (what the user typed, near enough). */
export function commandText(command) {
  if (!Array.isArray(command)) return command || "";
  return command.map((a) => (/^[\w@%+=:,./-]+$/.test(a) ? a : `'${a.replace(/'/g, `'"'"'`)}'`)).join(" ");
}

export function render() {
  const rec = watchedRun();
  const key = rec ? `${rec.id}:${rec.seq}` : "none";
  if (key === lastKey) return;
  lastKey = key;
  const box = $("run-command");
  box.hidden = !rec;
  if (!rec) {
    box.replaceChildren();
    return;
  }
  const py = rec.python?.version ? `Python ${rec.python.version}` : null;
  box.replaceChildren(
    el("code", { class: "cmd", "data-testid": "run-command-line" }, `$ ${commandText(rec.command)}`),
    el("span", { class: "cwd", "data-testid": "run-command-cwd", title: "the folder it ran in" },
      rec.cwd ? ` in ${rec.cwd}` : ""),
    py ? el("span", { class: "sub" }, ` · ${py}`) : null);
  box.title = `${commandText(rec.command)}${rec.cwd ? `\nin ${rec.cwd}` : ""}`;
}
