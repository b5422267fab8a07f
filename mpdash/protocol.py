"""The run protocol: everything the server and the processes of a run say to each other.

Standard library only, no import of any other mpdash module: this file is imported inside users'
programs (the in-run side, ``mpdash.inrun``) on every CPython 3.10-3.14, and by the engine.
Adding a message field means editing the field tuple here, the sender, and the engine's handler.

Transport: each process of a run opens its own Unix stream connection to ``ENV_EVENTS`` and
writes newline-delimited JSON objects ``{k, pid, t, ...fields}`` (see ``encode``/``decode``).
"""
from __future__ import annotations

import json
import time

# ------------------------------------------------------------------ environment of a run
ENV_EVENTS = "MPDASH_EVENTS"          # the Unix socket the run's processes report to
ENV_SERVER_PID = "MPDASH_SERVER_PID"  # the server's pid
ENV_RUN_ID = "MPDASH_RUN_ID"          # the run id
ENV_RUN_MAIN = "MPDASH_RUN_MAIN"      # "1" for the main program only (popped at start)
ENV_ENGINE = "MPDASH_ENGINE"          # a token per server engine: tells its processes apart
ENV_STACKS = "MPDASH_STACKS"          # the run's folder of stack dumps (see stacks_file)
ENV_PACKAGE = "MPDASH_PACKAGE"        # the folder of the server's mpdash package (sitecustomize
                                      # loads it from there; its parent is never on the path)

# ------------------------------------------------------------------ message kinds (key "k")
HELLO = "hello"        # first message of a process
SPAWNED = "spawned"    # a parent: Process.start() (or subprocess.Popen: role "child") returned
CHILD = "child"        # a multiprocessing child, first thing in it
EXITING = "exiting"    # a process is about to exit with code
REAPED = "reaped"      # a parent collected a child's exit code (os.wait*, subprocess, poll())
TERMINATE = "terminate"  # a parent sent a signal to a child (terminate()/kill())
OUT = "out"            # one printed line
RESULT = "result"      # a lesson's return value
ERROR = "error"        # a lesson's traceback
FINDING = "finding"    # a lesson's measured finding
MARK = "mark"          # a lesson marked a phase
EVENT = "event"        # an Event (tracing, or a lesson's ctx.event)

# The fields each kind carries besides k, pid and t. The engine's handler table must cover every
# kind here (tests/test_protocol.py proves it), and docs/API.md must name each one.
FIELDS: dict[str, tuple[str, ...]] = {
    # python: the main's interpreter only; argv: a plain fork's command line, as /proc has it
    HELLO: ("role", "ppid", "via", "name", "python", "argv"),
    SPAWNED: ("child", "name", "daemon", "method", "role"),   # role: absent = "worker"
    CHILD: ("name", "daemon"),
    EXITING: ("code",),
    REAPED: ("child", "code"),
    TERMINATE: ("child", "sig"),
    OUT: ("s", "x"),
    RESULT: ("value",),
    ERROR: ("text",),
    FINDING: ("key", "value", "text", "unit", "headline"),
    MARK: ("label", "detail"),
    EVENT: ("kind", "channel", "msg", "size", "detail"),  # plus any extra fields of the kind
}
KINDS = tuple(FIELDS)

# Kinds of EVENT that tracing (mpdash.inrun.trace_*) emits; docs/API.md's table lists each.
QUEUE_PUT, QUEUE_GET = "queue_put", "queue_get"
PIPE_SEND, PIPE_RECV = "pipe_send", "pipe_recv"
SHARED_WRITE = "shared_write"
TASK_START, TASK_END = "task_start", "task_end"
TASK_PUT, RESULT_GET = "task_put", "result_get"   # a pool's owner: a task put, a result collected
SHARED_INIT = "shared_init"   # what a Value/Array was created with (never counted: not a message)
MANAGER_CALL = "manager_call"   # a Manager proxy's method call: method in detail, proxy as channel
SHM_CREATE, SHM_ATTACH, SHM_UNLINK = "shm_create", "shm_attach", "shm_unlink"   # shared_memory
TRAFFIC = "traffic"    # a busy process's counts per channel instead of one event per message
TRACED_EVENTS = (QUEUE_PUT, QUEUE_GET, PIPE_SEND, PIPE_RECV, SHARED_WRITE, TASK_START, TASK_END,
                 TASK_PUT, RESULT_GET, SHARED_INIT, MANAGER_CALL, SHM_CREATE, SHM_ATTACH,
                 SHM_UNLINK, TRAFFIC)

# Streams of an OUT message.
STDOUT, STDERR = "out", "err"

# Limits applied on the sending side.
MAX_LINE = 4000        # characters of one printed line kept; the rest is cut with a marker
MAX_DETAIL = 200       # characters of an event's repr
MAX_ERROR = 4000       # characters of an error's text
MAX_COMMAND = 120      # characters of a command line kept as a child's name


def message(kind: str, pid: int, t: float | None = None, /, **fields) -> dict:
    """A message of ``kind`` from ``pid``; ``t`` defaults to now.

    Positional-only, so an EVENT can carry its own ``kind`` field (the event's kind).
    """
    return {"k": kind, "pid": pid, "t": time.time() if t is None else t, **fields}


def command_text(args) -> str:
    """A command line as a shell spells it (``sleep 1.5``), cut to ``MAX_COMMAND``: a child's
    name, whether its parent's ``subprocess`` or the server's ``/proc`` read gave it."""
    import shlex   # here: only a run that starts children pays for it (and for re)
    text = shlex.join(args)
    return text if len(text) <= MAX_COMMAND else text[:MAX_COMMAND - 1] + "…"


def encode(msg: dict) -> bytes | None:
    """One message as a line of JSON; None when it cannot be encoded (never raises)."""
    try:
        text = json.dumps(msg, separators=(",", ":"), default=repr)
    except (ValueError, TypeError, RecursionError):
        return None
    return (text + "\n").encode("utf-8", "replace")


def decode(line: bytes) -> dict | None:
    """One line back as a message; None for a line that is not a JSON object with a ``k``."""
    try:
        msg = json.loads(line)
    except ValueError:
        return None
    if not isinstance(msg, dict) or not isinstance(msg.get("k"), str):
        return None
    return msg


class LineBuffer:
    """Splits a stream of chunks into lines, keeping a partial last line for the next chunk.

    Works on ``bytes`` or ``str`` alike (the type of the first chunk); the one place where output
    and probe connections are cut into lines, on both sides of a run.
    """

    __slots__ = ("_parts",)

    def __init__(self):
        self._parts: list = []

    def feed(self, chunk) -> list:
        """The complete lines in ``chunk`` (without their newline), oldest first."""
        newline = b"\n" if isinstance(chunk, (bytes, bytearray)) else "\n"
        if newline not in chunk:
            if chunk:
                self._parts.append(chunk)
            return []
        first, *middle, rest = chunk.split(newline)
        if self._parts:
            self._parts.append(first)
            first = newline[:0].join(self._parts)
        lines = [first, *middle]
        self._parts = [rest] if rest else []
        return lines

    def flush(self):
        """The partial line left (or None), emptying the buffer."""
        if not self._parts:
            return None
        rest = self._parts[0][:0].join(self._parts)
        self._parts = []
        return rest

    def clear(self) -> None:
        self._parts = []

    def __bool__(self) -> bool:
        return bool(self._parts)


# ------------------------------------------------------------------ stack dumps (issue 11)
# Every Python process of a run registers faulthandler for STACKS_SIGNAL_NAME, dumping its threads
# into its own file stacks_file(<ENV_STACKS>, pid); the engine sends the signal and reads the
# file. SIGURG because its default action is to do nothing: sent to a process that never
# registered (a non-Python child, a program that exec'd) it changes nothing, and hardly any
# program handles it (it only reports out-of-band TCP data to a socket owner set with
# F_SETOWN; Go chose it for goroutine preemption for the same reasons). See mpdash/inrun/stacks.py.
STACKS_SIGNAL_NAME = "SIGURG"


def stacks_file(folder: str, pid: int) -> str:
    """Where the process ``pid`` of a run writes its stack dumps."""
    return f"{folder}/{pid}.txt"
