"""Run history that survives a restart: what to write and when, and what to do when the folder
stops taking it. The file itself (layout, reading back, one batch) is ``historyfile.py``.

One writer thread owns the file. The Hub listener is called under the hub lock, on the
engine's own threads, so it does nothing but note which run changed (a set add). Every
``FLUSH_PERIOD`` the writer takes the notes and copies, under the hub lock, what each changed
run gained since its last copy (every item carries its ``seq``, so "newer than the hub's seq at
the last copy" is exact and cheap: a backwards scan of each deque), then writes it in one
transaction outside the lock. Where a run's bounded deque dropped its oldest items, the file
drops them too: a run takes as much room on disk as it is allowed in memory.

Metrics are pulled from ``Run.frames`` rather than taken from ``metrics`` messages: a message holds
every run's processes and need not be pushed when nobody watches (issue 7), while the run's own
frames are always kept. Live runs are therefore copied at every period, changed or not.

When writing fails (issue 17: a full disk, a read-only or removed folder) nothing of the batch
is lost: its runs are copied again at the next try, every ``RETRY_PERIOD``, and written when the
folder works again (a new file - the folder was removed and made again - gets every run). A
removed folder is no error to SQLite (it writes on into the unlinked file), so the file's
identity is checked before each write. Meanwhile the runs live in the Hub; at most
``max_pending_runs`` are promised to the file, the oldest finished ones given up first and
counted. One log line when writing starts failing (or fails for a new reason), one when it
works again; the state is ``status()``, published to viewers as a ``history`` message.
"""
from __future__ import annotations

import errno
import logging
import os
import queue
import threading
import time

from mpdash.historyfile import (CRASHED_ERROR, DB_NAME, HistoryFile, identity_of, is_busy,
                                process_identity, run_record)
from mpdash.records import newer
from mpdash.state import Hub, Run

__all__ = ["Store", "DB_NAME", "CRASHED_ERROR", "NO_HISTORY"]

log = logging.getLogger(__name__)

FLUSH_PERIOD = 0.25      # s: at most this much of a live run is lost if the server is killed
RETRY_PERIOD = 1.0       # s: while writing fails (each try copies every pending run again)
CLOSE_PATIENCE = 3.0     # s: retries of a write locked out by another process at close
MAX_PENDING_RUNS = 100   # runs the file still owes, at most, while writing fails
NO_HISTORY = {"ok": True, "error": None, "pending_runs": 0, "dropped_runs": 0, "folder": None}


class _Gone(Exception):
    """The file the connection writes to is no longer the one at the path."""





def describe_failure(exc: BaseException, folder: str) -> str | None:
    """Why writing to ``folder`` failed, in words for the banner and the log; None when it is
    none of the known reasons."""
    if not os.path.isdir(folder):
        return "the folder was removed"
    try:
        read_only = bool(os.statvfs(folder).f_flag & os.ST_RDONLY)
    except OSError:
        read_only = False
    name = getattr(exc, "sqlite_errorname", "") or ""
    if read_only:
        return "the folder is on a read-only file system"
    if name == "SQLITE_FULL" or getattr(exc, "errno", None) == errno.ENOSPC:
        return "the disk is full"
    if isinstance(exc, _Gone):
        return str(exc)
    if not os.access(folder, os.W_OK):
        return "the folder is not writable"
    if name.startswith("SQLITE_READONLY"):
        return "the history file is read-only"
    if name.startswith("SQLITE_IOERR") or isinstance(exc, OSError):
        return f"input/output error ({exc})"[:200]
    return None


class Store:
    """SQLite persistence of a Hub's runs. ``attach(hub)`` loads, subscribes, starts writing."""

    def __init__(self, data_dir: str, max_pending_runs: int = MAX_PENDING_RUNS):
        os.makedirs(data_dir, exist_ok=True)
        self.folder = os.path.abspath(data_dir)
        self.path = os.path.join(self.folder, DB_NAME)
        self._file: HistoryFile | None = HistoryFile(self.path)
        self._file_identity = self._file.identity   # the last file opened, to tell a new one
        self.moved_aside = self._file.moved_aside
        self.max_pending_runs = max_pending_runs
        self._commands: queue.SimpleQueue = queue.SimpleQueue()   # flush / close
        self._dirty: set[str] = set()         # runs changed since the last copy (hub lock)
        self._deleted: list[str] = []         # runs removed since the last copy (hub lock)
        self._hub: Hub | None = None
        self._marks: dict[str, int] = {}      # run id -> hub seq at its last copy
        self._live: set[str] = set()          # runs copied at every period until they end
        self._given_up: set[str] = set()      # runs past max_pending_runs: not written
        self._thread: threading.Thread | None = None
        self._closed = False
        self.owner = process_identity(os.getpid())
        self._written_seq = -1
        self._error: str | None = None        # why writing fails now; None: it works
        self._locked_said = False             # "locked by another process" logged this time
        self._status = dict(NO_HISTORY, folder=self.folder)
        self.batches = 0                      # transactions written
        self.rows = 0                         # rows written
        self.write_seconds = 0.0              # time spent inside write transactions
        self.loaded = 0                       # runs loaded at start
        self.load_seconds = 0.0

    @property
    def _db(self):   # the open connection (tests tune it)
        return self._file.db

    def status(self) -> dict:
        """``{ok, error, pending_runs, dropped_runs, folder}`` (a copy; any thread)."""
        return dict(self._status)

    # ------------------------------------------------------------------------- wiring
    def attach(self, hub: Hub) -> None:
        """Load stored runs into ``hub``, then record everything that changes in it."""
        self._hub = hub
        runs, max_seq = self.load()
        hub.restore(runs, max_seq)
        for run in runs:
            self._marks[run.id] = max_seq
        hub.subscribe(self.listener)
        self._thread = threading.Thread(target=self._loop, name="mpdash-store", daemon=True)
        self._thread.start()

    def load(self) -> tuple[list[Run], int]:
        started = time.perf_counter()
        runs, max_seq = self._file.load()
        self.loaded = len(runs)
        self.load_seconds = time.perf_counter() - started
        return runs, max_seq

    def listener(self, name: str, payload: dict) -> None:
        """Hub listener. It runs under the hub lock, on the engine's threads: it only notes
        which run changed (a set add); the writer takes the notes under the same lock."""
        if name in ("output", "event", "proc"):
            self._dirty.add(payload["run"])
        elif name == "run":
            self._dirty.add(payload["id"])
        elif name == "run_deleted":
            self._deleted.append(payload["id"])

    def flush(self, timeout: float = 5.0) -> bool:
        """Wait until a write of everything that happened before this call was tried."""
        if self._thread is None or not self._thread.is_alive():
            return False
        done = threading.Event()
        self._commands.put(("flush", done))
        return done.wait(timeout)

    def close(self, timeout: float = 5.0) -> None:
        if self._closed:
            return
        self._closed = True
        if self._thread is not None and self._thread.is_alive():
            self._hub.unsubscribe(self.listener)
            done = threading.Event()
            self._commands.put(("close", done))
            done.wait(timeout)
            self._thread.join(1.0)
            # Still alive: stuck behind another process's lock; it closes the file itself.
        elif self._file is not None:
            self._file.close()   # no writer thread (a load only), or it already ended

    # ------------------------------------------------------------------------- writer thread
    def _loop(self) -> None:
        next_write = time.monotonic() + FLUSH_PERIOD
        while True:
            try:
                what, done = self._commands.get(timeout=max(0.0, next_write - time.monotonic()))
            except queue.Empty:
                what, done = "tick", None
            written = self._try_write()
            if what == "close":
                self._finish(written)
                done.set()
                return
            if done is not None:
                done.set()
            next_write = time.monotonic() + (FLUSH_PERIOD if written else RETRY_PERIOD)

    def _finish(self, written: bool) -> None:
        """The last chance to keep what the runs did: a write locked out by another process
        is retried while close() waits; a folder that fails is reported, not waited for. Then
        the connection is closed here, by the only thread that uses it: closing it from
        close()'s thread while a write still waited for a lock crashed the process."""
        until = time.monotonic() + CLOSE_PATIENCE
        while not written and self._error is None and time.monotonic() < until:
            time.sleep(0.1)
            written = self._try_write()
        lost = len(self._pending()) + len(self._given_up) if not written else 0
        if lost:
            why = self._error or "the file stayed locked by another process"
            log.warning("%d run%s not saved (or not completely) in %s: %s", lost,
                        " was" if lost == 1 else "s were",
                        self.folder, why)
        if self._file is not None:
            self._file.close()

    def _try_write(self) -> bool:
        try:
            self._open_file()
            self._write()
        except Exception as exc:  # a full disk or a lost folder must not take the server down
            if is_busy(exc):   # another process holds the file: expected now and then, retried
                if not self._locked_said:
                    log.warning("run history %s is locked by another process; retrying", self.path)
                    self._locked_said = True
                return False
            self._failed(exc)
            return False
        self._locked_said = False
        self._worked()
        return True

    def _open_file(self) -> None:
        """Make sure the connection writes to the file at the path; reopen after a failure."""
        if self._file is not None:
            if identity_of(self.path) == self._file.identity:
                return
            self._file.close()   # it writes into a file nobody will ever read again
            self._file = None
            raise _Gone("the history file was removed or replaced")
        if not os.path.isdir(self.folder):
            raise _Gone("the folder was removed")   # not re-made here: it may be a mount point
        self._file = HistoryFile(self.path)
        if self._file.identity != self._file_identity:
            # A new file holds none of our runs: every run of the hub is written to it (but
            # those already given up: that count was said, and it stays true).
            self._file_identity = self._file.identity
            self._hub.atomic(self._copy_all_again)

    def _copy_all_again(self) -> None:
        self._marks.clear()
        self._dirty |= set(self._hub.runs) - self._given_up

    def _pending(self) -> set[str]:
        """Runs with changes the file does not have yet."""
        return self._hub.atomic(
            lambda: {r for r in self._dirty | self._live if r in self._hub.runs})

    def _bound_pending(self) -> set[str]:
        """Give up the oldest finished runs past ``max_pending_runs`` (never a live one); the
        runs still owed to the file."""
        runs = self._hub.runs
        pending = {r for r in self._dirty | self._live if r in runs}
        over = len(pending) - self.max_pending_runs
        if over > 0:
            finished = sorted((runs[r] for r in pending if not runs[r].live),
                              key=lambda run: (run.started_at, run.id))
            for run in finished[:over]:
                self._dirty.discard(run.id)
                self._given_up.add(run.id)
                pending.discard(run.id)
        return pending

    def _failed(self, exc: Exception) -> None:
        known = describe_failure(exc, self.folder)
        reason = known or f"{type(exc).__name__}: {exc}"[:200]
        pending = self._hub.atomic(self._bound_pending)
        if reason != self._error:
            log.warning("run history in %s cannot be written: %s; runs are kept in memory and "
                        "written when it works again", self.folder, reason,
                        exc_info=None if known else exc)   # a bug: show where
            self._error = reason
        self._publish(False, reason, len(pending), len(self._given_up))

    def _worked(self) -> None:
        if self._error is not None:
            log.warning("run history in %s is written again%s", self.folder,
                        f" ({len(self._given_up)} runs could not be kept)" if self._given_up else "")
            self._error = None
        self._publish(True, None, 0, len(self._given_up))

    def _publish(self, ok: bool, error: str | None, pending: int, dropped: int) -> None:
        status = {"ok": ok, "error": error, "pending_runs": pending, "dropped_runs": dropped,
                  "folder": self.folder}
        if status == self._status:
            return
        self._status = status
        self._hub.announce("history", status)

    def _copy(self) -> tuple[list[tuple], list[str], int, dict[str, int]]:
        """Under the hub lock: what each changed run gained since its last copy, the runs
        deleted since, the hub's seq (everything up to it is in the copy), and each copied
        run's previous mark (to copy it again if the write fails)."""
        return self._hub.atomic(self._copy_changes)

    def _copy_changes(self) -> tuple[list[tuple], list[str], int, dict[str, int]]:
        hub = self._hub
        copies = []
        previous: dict[str, int] = {}
        now = hub.seq
        run_ids, self._dirty = self._dirty | self._live, set()
        deleted, self._deleted = self._deleted, []
        for run_id in run_ids:
            run = hub.runs.get(run_id)
            if run is None:
                continue
            mark = self._marks.get(run_id, 0)
            procs = [(order, p.to_json()) for order, p in enumerate(run.processes.values())
                     if p.seq > mark]     # order: births, as the live run lists them
            # Where a bounded deque has dropped its oldest items, the file drops them too.
            oldest = {name: items[0]["seq"] if len(items) == items.maxlen else None
                      for name, items in (("lines", run.output), ("events", run.events),
                                          ("frames", run.frames), ("stacks", run.stacks))}
            copies.append((run_id, run_record(run), list(run.marks), run.output_dropped, procs,
                           newer(run.output, mark), newer(run.events, mark),
                           newer(run.frames, mark), newer(run.stacks, mark), oldest))
            previous[run_id] = mark
            self._marks[run_id] = now
            if run.live:
                self._live.add(run_id)
            else:
                self._live.discard(run_id)
        return copies, deleted, now, previous

    def _write(self) -> None:
        copies, deleted, seq, previous = self._copy()
        if not copies and not deleted and seq == self._written_seq:
            return
        started = time.perf_counter()
        try:
            rows = self._file.write(copies, deleted, seq, self.owner)
        except BaseException:
            # Nothing of it was written (the transaction rolled back): copy it all again next
            # time, so a lock held too long or a full disk delays rows but loses none.
            self._hub.atomic(self._copy_again, previous, deleted)
            raise
        self._hub.atomic(self._forget, deleted)
        self._written_seq = seq
        self.batches += 1
        self.rows += rows
        self.write_seconds += time.perf_counter() - started

    def _copy_again(self, previous: dict[str, int], deleted: list[str]) -> None:
        self._marks.update(previous)
        self._dirty |= set(previous)
        self._deleted[:0] = deleted

    def _forget(self, deleted: list[str]) -> None:
        for run_id in deleted:
            self._marks.pop(run_id, None)
            self._live.discard(run_id)

    def size_bytes(self) -> int:
        return self._file.size_bytes() if self._file is not None else 0
