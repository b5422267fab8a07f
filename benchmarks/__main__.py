"""``python -m benchmarks [--quick] [name ...]``: run the benchmarks, print one table.

Every figure of issue 7, each from its own script (bench_*.py), measured in this run; results
also go to benchmarks/results/<UTC time>.json (git-ignored) with the machine's description.
"""
from __future__ import annotations

import argparse
import datetime
import importlib
import json
import os
import platform
import sys
import time
import traceback

from benchmarks._common import ROOT, row

ORDER = ["sampler", "glances", "latency", "cpu", "fanout", "observer", "stacks", "browser", "many", "page"]


def machine() -> dict:
    model = "?"
    try:
        with open("/proc/cpuinfo") as f:
            model = next(l.split(":", 1)[1].strip() for l in f if l.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return {"cpu": model, "cores": os.cpu_count(), "python": sys.version.split()[0],
            "platform": platform.platform(), "loadavg": os.getloadavg()}


def fmt(v) -> str:
    return "—" if v is None else f"{v:g}" if isinstance(v, (int, float)) else str(v)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks")
    parser.add_argument("--quick", action="store_true", help="fewer repetitions")
    parser.add_argument("names", nargs="*", default=[],
                        help=f"subset of: {' '.join(ORDER)}")
    args = parser.parse_args(argv)
    started = datetime.datetime.now(datetime.timezone.utc)
    info = machine()
    print(f"mpdash benchmarks — {started:%Y-%m-%d %H:%M} UTC — {info['cpu']}, {info['cores']} "
          f"cores, Python {info['python']}, load {info['loadavg'][0]:.2f}", flush=True)
    rows = []
    for name in args.names or ORDER:
        t0 = time.monotonic()
        try:
            got = importlib.import_module(f"benchmarks.bench_{name}").run(quick=args.quick)
        except Exception as exc:
            traceback.print_exc()
            got = [row(name, None, "", "", False, f"failed: {exc!r}"[:200])]
        for r in got:
            r["bench"] = name
            print(f"  [{name} {time.monotonic() - t0:.0f}s] {r['figure']}: {fmt(r['measured'])} "
                  f"{r['unit']} (target {r['target']}) {'met' if r['met'] else 'NOT met'}",
                  flush=True)
        rows += got
    width = max(len(r["figure"]) for r in rows)
    print()
    print(f"{'figure':<{width}}  {'measured':>10}  {'unit':<14} {'target':<12} ok")
    for r in rows:
        print(f"{r['figure']:<{width}}  {fmt(r['measured']):>10}  {r['unit']:<14} "
              f"{r['target']:<12} {'yes' if r['met'] else 'NO'}")
        if r["note"]:
            print(f"{'':<{width}}    {r['note']}")
    out_dir = os.path.join(ROOT, "benchmarks", "results")
    os.makedirs(out_dir, exist_ok=True)
    path = os.path.join(out_dir, f"{started:%Y%m%dT%H%M%S}.json")
    with open(path, "w") as f:
        json.dump({"started": started.isoformat(), "machine": info, "quick": args.quick,
                   "rows": rows}, f, indent=1, default=str)
    print(f"\nresults: {os.path.relpath(path, ROOT)}")
    return 0 if all(r["met"] for r in rows if "(info)" not in r["figure"]) else 1


if __name__ == "__main__":
    sys.exit(main())
