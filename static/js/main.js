// Wires the panels to the store and the connection. Each panel is a module with render(view);
// the store calls them all once per animation frame when something changed.
import { store, onDraw, invalidate } from "./store.js";
import { connect } from "./socket.js";
import * as catalog from "./catalog.js";
import * as controls from "./controls.js";
import * as charts from "./charts.js";
import * as tree from "./tree.js";
import * as timeline from "./timeline.js";
import * as pools from "./pools.js";
import * as messages from "./messages.js";
import * as output from "./output.js";
import * as code from "./code.js";
import * as runs from "./runs.js";
import * as stacks from "./stacks.js";
import * as runhead from "./runhead.js";
import * as highlight from "./highlight.js";
import * as verdict from "./verdict.js";
import * as history from "./history.js";
import * as program from "./program.js";
import * as pythons from "./pythons.js";
import { $ } from "./util.js";

let httpRole = null;

function applySystem(system) {
  if (!system) return;
  store.system = { ...store.system, ...system };
  // The HTTP answer and the socket's hello both say who we are; if either says viewer, we are
  // one: a page must never offer Run/Stop to someone the server treats as read-only.
  const roles = [httpRole, system.role].filter(Boolean);
  store.role = roles.includes("viewer") ? "viewer" : roles[0] || "presenter";
  document.body.dataset.role = store.role;
  const link = $("viewer-link");
  const url = store.role === "presenter" ? system.viewer_url : null;
  $("viewer-card").hidden = !url;
  link.hidden = !url;
  if (url) {
    link.href = url;
    link.textContent = url;
  }
}

async function start() {
  controls.init();
  charts.init();
  runs.init();
  highlight.init();
  verdict.init();
  stacks.init();
  for (const panel of [catalog, pythons, controls, program, verdict, code, runs, runhead, charts, tree, timeline, pools, messages, output, history, stacks]) onDraw(panel.render);
  onDraw(highlight.render);   // last: marks what the panels just drew
  // Read-only hooks for tests and for measuring the page (frames received, draw time).
  window.mpdash = { store, invalidate, get charts() { return charts.exposed(); } };
  const [system] = await Promise.all([
    fetch("/api/system").then((r) => (r.ok ? r.json() : null)).catch(() => null),
    catalog.loadLessons(),
  ]);
  httpRole = system?.role || null;
  applySystem(system);
  window.mpdash.socket = connect({ onHello: (hello) => applySystem({ ...system, ...hello.system, viewer_url: system?.viewer_url ?? hello.system?.viewer_url }) });
  invalidate();
}

start().catch((err) => {
  console.error(err);
  const banner = $("banner");
  banner.textContent = `The page could not start: ${err.message}`;
  banner.hidden = false;
});
