// Small shared helpers: formatting, colours, how a process ended, DOM building.

// Colour-blind-safe process colours: Okabe–Ito's eight, then six of Paul Tol's that stay apart
// from them (wine, teal, olive, indigo, purple, pale cyan). Index 0 is the run's main process and
// is never given to anyone else; workers cycle through the other 13, and a second round carries
// a dash (lines) or an underline (badges) instead of a new colour. Dark theme: the three darkest
// are lightened (see colourOf) so a line never vanishes into the background.
export const PALETTE = ["#E69F00", "#56B4E9", "#009E73", "#F0E442", "#0072B2", "#D55E00", "#CC79A7", "#000000",
  "#882255", "#44AA99", "#999933", "#332288", "#AA4499", "#88CCEE"];
const DARK_SWAP = { "#000000": "#E8E8E8", "#332288": "#8F84E0", "#882255": "#D46A94", "#0072B2": "#3A9BE0" };

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

/** Colour and dash of a process's colour index (0 = the main); the same in every panel. */
export function colourOf(index) {
  const others = PALETTE.length - 1;
  const i = index <= 0 ? 0 : 1 + ((index - 1) % others);
  const round = index <= 0 ? 0 : Math.floor((index - 1) / others);
  let c = PALETTE[i];
  if (isDark() && DARK_SWAP[c]) c = DARK_SWAP[c];
  const dash = round % 2 === 1 ? [8, 5] : round >= 2 ? [2, 4] : null;
  return { colour: c, dash, round };
}

/** Text colour readable on top of a colour (WCAG relative luminance, not a list). */
export function inkOn(colour) {
  const m = /^#([0-9a-f]{6})$/i.exec(colour || "");
  if (!m) return "#111";
  const lin = (k) => {
    const v = parseInt(m[1].slice(k, k + 2), 16) / 255;
    return v <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4;
  };
  const lum = 0.2126 * lin(0) + 0.7152 * lin(2) + 0.0722 * lin(4);
  // Contrast with white vs with near-black: whichever is higher.
  return (1.05 / (lum + 0.05)) > ((lum + 0.05) / 0.0573) ? "#fff" : "#111";
}

/** The pid badge of a process, the same in every panel: solid colour, readable ink; a process of
 * a later colour round gets an underline bar (a dashed outline made the pid unreadable). */
export function procBadge(p, pid = p?.pid) {
  if (!p) return el("span", { class: "pid-chip plain", "data-testid": "proc-badge", "data-pid": pid ?? "" }, pid === null || pid === undefined ? "?" : String(pid));
  const { colour, round } = colourOf(p.colour);
  return el("span", {
    class: `pid-chip${round ? " round2" : ""}`, "data-testid": "proc-badge", "data-pid": p.pid,
    style: { background: colour, color: inkOn(colour) },
  }, String(p.pid));
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

/**
 * Process state word for the tree from a frame's reading. The stat letter is the main thread's
 * only: a main waiting in join() while its threads compute reads "S". A process is running when
 * a thread of it was running at the sample (`running`, from /proc/<pid>/task) or when it used
 * more than half a core since its previous sample (a snapshot can fall between two slices).
 */
export function stateWord(proc, status, sample = null) {
  if (proc.ended_at !== null && proc.ended_at !== undefined) return "exited";
  if (status === "Z") return "zombie";
  if (status === "T" || status === "t") return "stopped";   // SIGSTOP, or a debugger
  if (status === "R" || (sample && (sample.running > 0 || sample.cpu >= 50))) return "running";
  if (status) return "sleeping";
  return "running";
}

/** The word shown for that state: "running (3 threads)" for a multi-threaded process. */
export function stateText(state, sample) {
  const n = sample?.threads;
  return (state === "running" || state === "sleeping") && n > 1 ? `${state} (${n} threads)` : state;
}

export function cssVar(name) {
  return getComputedStyle(document.documentElement).getPropertyValue(name).trim();
}

/** Round axis steps: 1, 2 or 5 × 10^k (never 0.25, which one decimal prints as "0.3"). */
export const ROUND_INCRS = [];
for (let e = -3; e <= 6; e++) for (const m of [1, 2, 5]) ROUND_INCRS.push(Number((m * 10 ** e).toPrecision(1)));

/** The smallest round step giving at most maxTicks steps over span, and the decimals it needs. */
export function roundStep(span, maxTicks = 6) {
  const step = ROUND_INCRS.find((s) => span / s <= maxTicks) || ROUND_INCRS.at(-1);
  return { step, decimals: decimalsOf(step) };
}

/** Decimals that print a multiple of step exactly (0.05 -> 2, 0.5 -> 1, 5 -> 0). */
export function decimalsOf(step) {
  return step >= 1 ? 0 : Math.min(4, Math.ceil(-Math.log10(step) - 1e-9));
}
