"""The main program of one lesson run: ``python -m mpdash.harness MODULE PARAMS_JSON``.

The server starts this in a clean interpreter, in its own process group, once per run — exactly
like running the tutorial's example as a script. ``mpdash.inrun`` (installed by
``sitecustomize`` before this module) already reports births, exits and output; the harness
adds the lesson's result, its findings and the traceback if the lesson's main raises.
"""
from __future__ import annotations

import contextlib
import importlib
import json
import multiprocessing
import sys
import traceback

from mpdash import protocol
from mpdash.inrun import budget, channel


class RunContext:
    """What a lesson's ``main(ctx, **params)`` may use besides plain multiprocessing."""

    def __init__(self, params: dict):
        self.params = params

    def finding(self, key: str, value, text: str, unit: str | None = None,
                headline: bool = False) -> None:
        """A measured fact of this run, stated in one sentence that contains the number.

        ``headline``: the one finding that answers the lesson's question (the page's verdict).
        """
        channel.send(protocol.FINDING, key=key, value=value, text=text, unit=unit,
                     headline=bool(headline))

    def mark(self, label: str, **detail) -> None:
        """A named instant (e.g. "threads start"), so the server can cut its metrics into phases."""
        channel.send(protocol.MARK, label=label, detail=detail)

    def event(self, kind: str, **fields) -> None:
        """A lesson-specific event (same shape as the traced ones)."""
        channel.send(protocol.EVENT, kind=kind, **fields)

    @contextlib.contextmanager
    def untraced(self, why: str):
        """Run a timing-sensitive section without tracing, and say so in the run's events."""
        self.mark("untraced", why=why)
        with budget.paused():
            yield
        self.mark("traced")


def main(argv: list[str]) -> int:
    module_name, params = argv[0], json.loads(argv[1])
    # No SIGTERM handler here, on purpose. A Python-level handler in a process that forks
    # loses signals: one that reaches a child between fork() and the interpreter's after-fork
    # reset is caught by the C handler and then discarded, so Pool.terminate() could leave a
    # worker alive and the run hung (seen: 2 runs in 100 under load). Stop signals the whole
    # process group; if the server dies, PR_SET_PDEATHSIG ends the main and each child.
    module = importlib.import_module(module_name)
    lesson = module.LESSON
    if "start_method" in params:
        multiprocessing.set_start_method(params["start_method"], force=True)
    try:
        result = lesson.main(RunContext(params), **params)
    except BaseException:
        text = traceback.format_exc()
        sys.stderr.write(text)
        sys.stderr.flush()
        channel.send(protocol.ERROR, text=text[-protocol.MAX_ERROR:])
        return 1
    channel.send(protocol.RESULT, value=result)
    sys.stdout.flush()
    return 0


if __name__ == "__main__":
    # Returning (not os._exit) lets multiprocessing's atexit hook terminate daemonic children
    # and join the others, as it would for the tutorial's script.
    sys.exit(main(sys.argv[1:]))
