// The connection: Socket.IO stream in, start/stop out. On every `hello` (first connect and each
// reconnect) it catches up over HTTP: the full run for a newcomer, `?since=` for a returner.
import { io } from "/static/vendor/socket.io/socket.io.esm.min.js";
import { store, applyLive, applySummary, loadRun, invalidate, selectRun, runList, isLive } from "./store.js";

let socket = null;
let everConnected = false;
// The last seq applied before the connection dropped: the catch-up asks for what came after it.
// Not store.seq at `hello`: broadcasts can reach a reconnected client before its hello, and
// their seq would skip what happened while it was away.
let seqAtDisconnect = 0;

const STREAM = ["run", "run_deleted", "proc", "metrics", "output", "event", "history", "stacks"];

export function connect({ onHello } = {}) {
  socket = io({ transports: ["polling", "websocket"], reconnectionDelayMax: 2000 });
  socket.on("connect", () => {
    store.connected = true;
    document.getElementById("banner").hidden = true;
    invalidate();
  });
  socket.on("disconnect", () => {
    store.connected = false;
    seqAtDisconnect = store.seq;
    // Until its catch-up fetch, a shown run queues what arrives (see applyLive): applied now,
    // a message would hide the older ones the fetch brings (they are deduplicated by seq).
    for (const rec of store.runs.values()) if (rec.full) rec.stale = true;
    document.getElementById("banner").hidden = false;
    invalidate();
  });
  socket.on("connect_error", () => {
    document.getElementById("banner").hidden = false;
  });
  socket.on("hello", (hello) => {
    const returning = everConnected;
    everConnected = true;
    const lastSeq = returning ? seqAtDisconnect : store.seq;
    store.system = hello.system;
    store.role = hello.system?.role || store.role;
    const known = new Set(hello.runs.map((r) => r.id));
    for (const s of hello.runs) applySummary(s);
    // A run deleted while we were away is gone from the server's list too.
    if (returning) for (const id of [...store.runs.keys()]) if (!known.has(id)) store.runs.delete(id);
    if (hello.seq > store.seq) store.seq = hello.seq;
    if (returning) {
      for (const rec of store.runs.values()) if (rec.full) loadRun(rec.id, lastSeq);
    }
    const newest = runList()[0];
    if (store.follow && newest && newest.id !== store.selectedRun) selectRun(newest.id);
    else if (store.selectedRun) loadRun(store.selectedRun);
    if (onHello) onHello(hello, returning);
    invalidate();
  });
  for (const name of STREAM) {
    socket.on(name, (m) => {
      applyLive(name, m);
      if (name === "run" && store.follow && m.id !== store.selectedRun && isLive(m)) {
        const newest = runList()[0];
        if (newest && newest.id === m.id) selectRun(m.id);
      }
      invalidate();
    });
  }
  return socket;
}

function ack(event, payload, timeoutMs = 10000) {
  return new Promise((resolve) => {
    if (!socket || !socket.connected) {
      resolve({ error: "not connected to the server" });
      return;
    }
    socket.timeout(timeoutMs).emit(event, payload, (err, answer) => {
      resolve(err ? { error: "the server did not answer in time" } : answer);
    });
  });
}

/** Start a run: resolves to the Run or {error}. */
export function startRun(lesson, params) {
  // store.python: an id from GET /api/system pythons (pythons.js); unset, the server's own.
  return ack("start", store.python ? { lesson, params, python: store.python } : { lesson, params });
}

/** Stop a run: resolves once its processes are gone, with the final Run or {error}. */
export function stopRun(runId) {
  return ack("stop", { run: runId });
}
