// Small shared helpers: formatting, colours, how a process ended, DOM building.

// Okabe–Ito, colour-blind safe. Black swaps with near-white in the dark theme (see colourOf).
export const PALETTE = ["#E69F00", "#56B4E9", "#009E73", "#F0E442", "#0072B2", "#D55E00", "#CC79A7", "#000000"];

const SIGNALS = {
  1: "SIGHUP", 2: "SIGINT", 3: "SIGQUIT", 4: "SIGILL", 5: "SIGTRAP", 6: "SIGABRT", 7: "SIGBUS",
  8: "SIGFPE", 9: "SIGKILL", 10: "SIGUSR1", 11: "SIGSEGV", 12: "SIGUSR2", 13: "SIGPIPE",
  14: "SIGALRM", 15: "SIGTERM", 16: "SIGSTKFLT", 17: "SIGCHLD", 18: "SIGCONT", 19: "SIGSTOP",
  20: "SIGTSTP", 21: "SIGTTIN", 22: "SIGTTOU", 23: "SIGURG", 24: "SIGXCPU", 25: "SIGXFSZ",
  26: "SIGVTALRM", 27: "SIGPROF", 28: "SIGWINCH", 29: "SIGIO", 30: "SIGPWR", 31: "SIGSYS",
};

export function signalName(n) {
  return SIGNALS[n] || `signal ${n}`;
}

/** "exit 0", "exit 1" or the signal's name for a negative exit code. */
export function exitText(code) {
  if (code === null || code === undefined) return "";
  return code < 0 ? signalName(-code) : `exit ${code}`;
}

/** How a process ended, as shape + word (never colour alone). */
export function endBadge(proc) {
  const code = proc.exitcode;
  const ended = proc.ended_at !== null && proc.ended_at !== undefined;
  if (!ended && !proc.end) return null;
  const codeText = exitText(code);
  switch (proc.end) {
    case "exit": return { shape: "✓", word: codeText || "exit 0", cls: "end-exit", title: "exited normally" };
    case "crash": return { shape: "✕", word: codeText ? `crash ${codeText}` : "crash", cls: "end-crash", title: "crashed" };
    case "terminated": return { shape: "⊘", word: `terminated${codeText ? " " + codeText : ""}`, cls: "end-terminated", title: "ended by its parent or its pool" };
    case "killed": return { shape: "■", word: `killed${codeText ? " " + codeText : ""}`, cls: "end-killed", title: "killed by Stop or a limit" };
    default: return { shape: "…", word: codeText || "ended", cls: "end-unknown", title: "ended; exit code not known yet" };
  }
}

export function isDark() {
  return document.documentElement.dataset.theme === "dark";
}

/** Colour and dash of the i-th process of a run; the same in every panel. */
export function colourOf(index) {
  let c = PALETTE[index % PALETTE.length];
  if (c === "#000000" && isDark()) c = "#E8E8E8";
  const dash = Math.floor(index / PALETTE.length) % 2 === 1 ? [8, 5] : null;
  return { colour: c, dash };
}

/** Text colour readable on top of a palette colour. */
export function inkOn(colour) {
  return ["#0072B2", "#000000", "#D55E00", "#CC79A7"].includes(colour) ? "#fff" : "#111";
}

export function fmtNum(v, decimals = 1) {
  return v === null || v === undefined || Number.isNaN(v) ? "–" : Number(v).toFixed(decimals);
}

export function fmtBytesKiB(kib) {
  if (kib === null || kib === undefined) return "–";
  if (kib >= 1024 * 1024) return `${(kib / 1024 / 1024).toFixed(2)} GiB`;
  if (kib >= 1024) return `${(kib / 1024).toFixed(1)} MiB`;
  return `${kib} KiB`;
}

export function fmtDuration(s) {
  if (s === null || s === undefined || Number.isNaN(s)) return "";
  if (s < 10) return `${s.toFixed(2)} s`;
  if (s < 120) return `${s.toFixed(1)} s`;
  return `${Math.floor(s / 60)} min ${Math.round(s % 60)} s`;
}

/** JSON as Python's json.dumps writes it (", " and ": "), which is what the tutorial prints. */
export function pyJson(value) {
  if (value === undefined) return "";
  if (Array.isArray(value)) return `[${value.map(pyJson).join(", ")}]`;
  if (value && typeof value === "object") {
    return `{${Object.entries(value).map(([k, v]) => `${JSON.stringify(k)}: ${pyJson(v)}`).join(", ")}}`;
  }
  return JSON.stringify(value);
}

/** el("div", {class: "x", dataset: {a: 1}, text: "hi"}, child...) */
export function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === null || v === undefined || v === false) continue;
    if (k === "class") node.className = v;
    else if (k === "text") node.textContent = v;
    else if (k === "dataset") Object.assign(node.dataset, v);
    else if (k === "style") Object.assign(node.style, v);
    else if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
    else node.setAttribute(k, v === true ? "" : v);
  }
  for (const c of children) {
    if (c === null || c === undefined || c === false) continue;
    node.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return node;
}

export function $(id) {
  return document.getElementById(id);
}

/** Process state word for the tree from a /proc status letter. */
export function stateWord(proc, status) {
  if (proc.ended_at !== null && proc.ended_at !== undefined) return "exited";
  if (status === "Z") return "zombie";
  if (status === "R") return "running";
  if (status === "T" || status === "t") return "stopped";   // SIGSTOP, or a debugger
  if (status) return "sleeping";
  return "running";
}

export function cssVar(name) {
  return getComputedStyle(document.documentElement).getPropertyValue(name).trim();
}
