// The history banner (issue 17): while the server cannot write run history (a full disk, a
// read-only or removed --data folder) it says so, with the reason and the folder, so nobody
// believes runs are kept when they are not. The state comes with /api/system, the socket's
// hello and every `history` message; runs keep working live either way.
import { store } from "./store.js";
import { $ } from "./util.js";

let shown = null;

function textOf(history) {
  if (!history || history.ok !== false) return "";
  let text = `runs are not being saved: ${history.error} (${history.folder})`;
  const waiting = history.pending_runs || 0;
  if (waiting) text += ` — ${waiting} run${waiting === 1 ? "" : "s"} kept in memory until it works again`;
  if (history.dropped_runs) text += `, ${history.dropped_runs} too many to keep`;
  return text;
}

export function render() {
  const text = textOf(store.system?.history);
  if (text === shown) return;
  shown = text;
  const banner = $("history-banner");
  banner.textContent = text;
  banner.hidden = !text;
}
