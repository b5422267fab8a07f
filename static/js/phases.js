// Which phase of a run each process belongs to: the lesson's ctx.mark() labels ("unlocked",
// "locked", "threads", "processes"...). A lesson that runs two rounds of workers shows 8 of them
// for "4 processes": each carries the phase it was started in, so the count adds up.

const NOT_PHASES = new Set(["untraced", "traced"]);   // ctx.untraced(): about the dashboard

/** pid -> phase label, for runs whose workers were started in at least two phases. */
export function phases(view) {
  const marks = view.events.filter((e) => e.kind === "mark" && e.detail && !NOT_PHASES.has(e.detail))
    .sort((a, b) => a.t - b.t);
  const out = new Map();
  if (marks.length < 2) return out;
  const labels = new Set();
  for (const p of view.procs) {
    if (p.role === "main") continue;
    let label = null;
    for (const m of marks) if (m.t <= (p.started_at ?? 0)) label = String(m.detail);
    if (label) {
      out.set(p.pid, label);
      labels.add(label);
    }
  }
  return labels.size >= 2 ? out : new Map();
}
