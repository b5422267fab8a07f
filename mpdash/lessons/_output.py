"""Findings read from what a run's processes printed (for the §3 and §12 lessons)."""
from __future__ import annotations


def _count(n: int, one: str, many: str | None = None) -> str:
    return f"{n} {one if n == 1 else many or one + 's'}"


def who_printed(run, first_line: str, headline: str = "first") -> list:
    """Which processes printed, and which one printed ``first_line`` first.

    ``headline``: the key of the finding that answers the lesson's question (the other one
    when that one could not be stated).
    """
    printers: dict = {}
    first = None
    for line in run.output:
        if line["stream"] != "out":
            continue
        printers[line["pid"]] = printers.get(line["pid"], 0) + 1
        if first is None and line["text"].endswith(first_line):
            first, first_text = line["pid"], line["text"]
    if not printers:
        return []

    def label(pid):
        proc = run.processes.get(pid) or {}
        return f"{proc.get('name') or 'process'} (pid {pid}, {proc.get('role', '?')})"

    found = [{"key": "printing_processes", "value": len(printers), "unit": None,
              "text": f"{_count(len(printers), 'process', 'processes')} printed: "
                      + ", ".join(f"{label(pid)} {_count(n, 'line')}"
                                  for pid, n in printers.items())
                      + "."}]
    if first is not None:
        found.append({"key": "first", "value": (run.processes.get(first) or {}).get("name")
                      or str(first), "unit": None,
                      "text": f"{label(first)} printed {first_text!r} first this time."})
    chosen = headline if any(f["key"] == headline for f in found) else found[0]["key"]
    for f in found:
        f["headline"] = f["key"] == chosen
    return found


def last_exception(lines: list[str]) -> str | None:
    """``Type: message`` of the last exception a traceback printed. The bootstrapping
    RuntimeError starts its message on the line after ``RuntimeError:``: then its first
    paragraph, joined into one line, is the message."""
    for i in range(len(lines) - 1, -1, -1):
        text = lines[i]
        head, sep, rest = text.partition(":")
        if sep and head and not text.startswith(" ") and head.replace(".", "").isidentifier() \
                and (head.endswith("Error") or head.endswith("Exception")):
            message = rest.strip()
            if not message:
                paragraph = []
                for follow in lines[i + 1:]:
                    if not follow.strip():
                        if paragraph:
                            break
                        continue
                    paragraph.append(follow.strip())
                message = " ".join(paragraph)
            return f"{head}: {message}"
    return None
