"""Run history that survives a restart: runs, processes, output, events and metrics in SQLite.

One writer thread owns the database. The Hub listener is called under the hub lock, on the
engine's own threads, so it does nothing but note which run changed (a set add). Every
``FLUSH_PERIOD`` the writer takes the notes and copies, under the hub lock, what each changed
run gained since its last copy (every item carries its ``seq``, so "newer than the hub's seq at
the last copy" is exact and cheap: a backwards scan of each deque), then writes it in one
transaction outside the lock. Where a run's bounded deque dropped its oldest items, the file
drops them too: a run takes as much room on disk as it is allowed in memory.

Metrics are pulled from ``Run.frames`` rather than taken from ``metrics`` messages: a message holds
every run's processes and need not be pushed when nobody watches (issue 7), while the run's own
frames are always kept. Live runs are therefore copied at every period, changed or not.

On start, every stored run is loaded back into the Hub. A run stored as live was cut short by a
server that died without ending it: it is loaded as ``failed``, saying so, with what was recorded.
"""
from __future__ import annotations

import json
import logging
import os
import queue
import sqlite3
import threading
import time

from mpdash import procfs
from mpdash.state import Hub, Proc, Run

__all__ = ["Store", "DB_NAME", "CRASHED_ERROR"]

log = logging.getLogger(__name__)

DB_NAME = "mpdash.sqlite3"
SCHEMA_VERSION = 1
FLUSH_PERIOD = 0.25      # s: at most this much of a live run is lost if the server is killed
WRITE_PATIENCE = 1.0     # s: SQLite's busy timeout; a write still locked out is made next time
CLOSE_PATIENCE = 3.0     # s: retries of the last write at close (close() waits 5 s)
OPEN_PATIENCE = 15.0     # s: how long to wait for other processes that hold the file locked
CRASHED_ERROR = ("the server stopped while this run was live (it was killed or crashed); "
                 "what the run recorded until then is kept")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    id TEXT PRIMARY KEY, started_at REAL NOT NULL, state TEXT NOT NULL, seq INTEGER NOT NULL,
    summary TEXT NOT NULL, marks TEXT NOT NULL DEFAULT '[]', output_dropped INTEGER NOT NULL DEFAULT 0,
    owner TEXT NOT NULL DEFAULT '');
CREATE TABLE IF NOT EXISTS procs (
    run TEXT NOT NULL, pid INTEGER NOT NULL, seq INTEGER NOT NULL, data TEXT NOT NULL,
    ord INTEGER NOT NULL, PRIMARY KEY (run, pid)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS lines (
    run TEXT NOT NULL, seq INTEGER NOT NULL, t REAL NOT NULL, pid INTEGER, stream TEXT NOT NULL,
    text TEXT NOT NULL, PRIMARY KEY (run, seq)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS events (
    run TEXT NOT NULL, seq INTEGER NOT NULL, data TEXT NOT NULL,
    PRIMARY KEY (run, seq)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS frames (
    run TEXT NOT NULL, seq INTEGER NOT NULL, data TEXT NOT NULL,
    PRIMARY KEY (run, seq)) WITHOUT ROWID;
"""
_TABLES = ("runs", "procs", "lines", "events", "frames")
_SUMMARY_FIELDS = ("lesson", "title", "params", "kind", "command", "state", "started_at",
                   "ended_at", "result", "findings", "error", "seq", "time_limit")


def _dumps(value) -> str:
    return json.dumps(value, separators=(",", ":"), default=repr)


def _identity(pid: int) -> str:
    """``pid:start-time``: names a process for as long as it lives, even if its pid is reused."""
    stat = procfs.read_stat(pid)
    return f"{pid}:{stat.start_ticks}" if stat is not None else f"{pid}:?"


def _alive(owner: str) -> bool:
    pid, _, _ = owner.partition(":")
    return pid.isdigit() and _identity(int(pid)) == owner


class _Unreadable(Exception):
    """The history file is damaged or of another layout: it is kept aside, not used."""


def _busy(exc: sqlite3.OperationalError) -> bool:
    text = str(exc)
    return "locked" in text or "busy" in text


def _newer(items, mark: int) -> list:
    """Items of a seq-ordered deque whose seq is above ``mark``, oldest first."""
    found = []
    for item in reversed(items):
        if item["seq"] <= mark:
            break
        found.append(item)
    found.reverse()
    return found


class Store:
    """SQLite persistence of a Hub's runs. ``attach(hub)`` loads, subscribes, starts writing."""

    def __init__(self, data_dir: str):
        os.makedirs(data_dir, exist_ok=True)
        self.path = os.path.join(data_dir, DB_NAME)
        self.moved_aside: str | None = None
        try:
            self._db = self._open()
        except _Unreadable as exc:
            # A damaged file or another layout: keep it aside, say so, start a new history.
            aside = f"{self.path}.unreadable-{time.time_ns()}"
            for suffix in ("", "-wal", "-shm"):
                try:
                    os.replace(self.path + suffix, aside + suffix)
                except FileNotFoundError:
                    pass
            log.warning("run history %s could not be read (%s); moved to %s", self.path, exc, aside)
            self.moved_aside = aside
            self._db = self._open()
        self._commands: queue.SimpleQueue = queue.SimpleQueue()   # flush / close
        self._dirty: set[str] = set()         # runs changed since the last copy (hub lock)
        self._deleted: list[str] = []         # runs removed since the last copy (hub lock)
        self._hub: Hub | None = None
        self._marks: dict[str, int] = {}      # run id -> hub seq at its last copy
        self._live: set[str] = set()          # runs copied at every period until they end
        self._thread: threading.Thread | None = None
        self._closed = False
        self.owner = _identity(os.getpid())
        self._written_seq = -1
        self.batches = 0                      # transactions written
        self.rows = 0                         # rows written
        self.write_seconds = 0.0              # time spent inside write transactions
        self.loaded = 0                       # runs loaded at start
        self.load_seconds = 0.0

    def _open(self) -> sqlite3.Connection:
        """Open (creating if need be) the history file.

        Several mpdash processes may open one folder at the same moment (a server and a few
        ``watch`` commands): a "database is locked" then means "wait", never "damaged". Only
        what SQLite calls not-a-database or corrupt, or another schema version, raises
        ``_Unreadable`` (the caller keeps that file aside); anything else is raised as is.
        """
        deadline = time.monotonic() + OPEN_PATIENCE
        while True:
            try:
                return self._open_once()
            except sqlite3.OperationalError as exc:
                if not _busy(exc) or time.monotonic() > deadline:
                    raise
                time.sleep(0.02)
            except sqlite3.DatabaseError as exc:
                if getattr(exc, "sqlite_errorname", "") in ("SQLITE_NOTADB", "SQLITE_CORRUPT"):
                    raise _Unreadable(str(exc)) from exc
                raise

    def _open_once(self) -> sqlite3.Connection:
        # Used by the caller's thread for the load, then only by the writer thread.
        db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None,
                             timeout=WRITE_PATIENCE)
        try:
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")   # WAL: durable at checkpoints, no fsync per batch
            # Check the version and create the tables under one write lock: another process
            # creating the file at the same time is either done (version set) or not started.
            db.execute("BEGIN IMMEDIATE")
            try:
                version = db.execute("PRAGMA user_version").fetchone()[0]
                tables = db.execute("SELECT count(*) FROM sqlite_master").fetchone()[0]
                if version != SCHEMA_VERSION and (version or tables):
                    raise _Unreadable(f"schema version {version}, expected {SCHEMA_VERSION}")
                for statement in _SCHEMA.split(";"):
                    if statement.strip():
                        db.execute(statement)
                db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
                db.execute("COMMIT")
            except BaseException:
                if db.in_transaction:
                    db.execute("ROLLBACK")
                raise
        except BaseException:
            db.close()
            raise
        return db

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
        """Wait until everything that happened before this call is written."""
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
        else:
            self._db.close()   # no writer thread (a load only), or it already ended

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
            next_write = time.monotonic() + FLUSH_PERIOD

    def _finish(self, written: bool) -> None:
        """The last chance to keep what the runs did: the write is retried while close()
        waits. Then the connection is closed here, by the only thread that uses it: closing
        it from close()'s thread while a write still waited for a lock crashed the process."""
        until = time.monotonic() + CLOSE_PATIENCE
        while not written and time.monotonic() < until:
            time.sleep(0.1)
            written = self._try_write()
        self._db.close()

    def _try_write(self) -> bool:
        try:
            self._write()
            return True
        except sqlite3.OperationalError as exc:
            if not _busy(exc):
                log.exception("storing runs")
            else:   # another process holds the file: expected now and then, retried
                log.warning("run history %s is locked by another process; retrying", self.path)
            return False
        except Exception:  # a full disk must not take the server down; keep trying
            log.exception("storing runs")
            return False

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
                                          ("frames", run.frames))}
            copies.append((run_id, run.summary(), list(run.marks), run.output_dropped, procs,
                           _newer(run.output, mark), _newer(run.events, mark),
                           _newer(run.frames, mark), oldest))
            previous[run_id] = mark
            self._marks[run_id] = now
            if run.live:
                self._live.add(run_id)
            else:
                self._live.discard(run_id)
        return copies, deleted, now, previous

    def _write(self) -> None:
        copies, deleted, seq, previous = self._copy()
        try:
            self._write_copies(copies, deleted, seq)
        except BaseException:
            # Nothing of it was written (the transaction rolled back): copy it all again next
            # time, so a lock held too long by another process delays rows but loses none.
            self._hub.atomic(self._copy_again, previous, deleted)
            raise

    def _copy_again(self, previous: dict[str, int], deleted: list[str]) -> None:
        self._marks.update(previous)
        self._dirty |= set(previous)
        self._deleted[:0] = deleted

    def _write_copies(self, copies: list[tuple], deleted: list[str], seq: int) -> None:
        if not copies and not deleted and seq == self._written_seq:
            return
        started = time.perf_counter()
        rows = 0
        db = self._db
        db.execute("BEGIN")
        try:
            for run_id, summary, marks, dropped, procs, lines, events, frames, oldest in copies:
                db.execute("INSERT OR REPLACE INTO runs VALUES (?,?,?,?,?,?,?,?)",
                           (run_id, summary["started_at"], summary["state"], summary["seq"],
                            _dumps(summary), _dumps([list(m) for m in marks]), dropped,
                            self.owner))
                db.executemany("INSERT OR REPLACE INTO procs VALUES (?,?,?,?,?)",
                               [(run_id, p["pid"], p["seq"], _dumps(p), order)
                                for order, p in procs])
                db.executemany("INSERT OR IGNORE INTO lines VALUES (?,?,?,?,?,?)",
                               [(run_id, l["seq"], l["t"], l["pid"], l["stream"], l["text"])
                                for l in lines])
                db.executemany("INSERT OR IGNORE INTO events VALUES (?,?,?)",
                               [(run_id, e["seq"], _dumps(e)) for e in events])
                db.executemany("INSERT OR IGNORE INTO frames VALUES (?,?,?)",
                               [(run_id, f["seq"], _dumps(f)) for f in frames])
                for table, first in oldest.items():
                    if first is not None:
                        db.execute(f"DELETE FROM {table} WHERE run = ? AND seq < ?", (run_id, first))
                rows += 1 + len(procs) + len(lines) + len(events) + len(frames)
            for run_id in deleted:
                for table in _TABLES:
                    db.execute(f"DELETE FROM {table} WHERE {'id' if table == 'runs' else 'run'} = ?",
                               (run_id,))
                self._marks.pop(run_id, None)
                self._live.discard(run_id)
            # The hub's seq also counts frames of no run: keep it, so it never goes back.
            db.execute("INSERT OR REPLACE INTO meta VALUES ('seq', ?)", (seq,))
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise
        self._written_seq = seq
        self.batches += 1
        self.rows += rows
        self.write_seconds += time.perf_counter() - started

    # ------------------------------------------------------------------------- loading
    def load(self) -> tuple[list[Run], int]:
        """Every stored run, oldest first, and the highest seq any of them used.

        A run stored as live is marked ``failed`` (in memory and in the file) with its
        unfinished processes ended when its last record was made.
        """
        started = time.perf_counter()
        db = self._db
        runs: dict[str, Run] = {}
        max_seq = 0
        for run_id, summary, marks, dropped, state, owner in db.execute(
                "SELECT id, summary, marks, output_dropped, state, owner FROM runs "
                "ORDER BY started_at, id"):
            if state in ("starting", "running") and _alive(owner):
                continue   # another server sharing this folder is running it right now
            data = json.loads(summary)
            run = Run(id=run_id, **{k: data.get(k) for k in _SUMMARY_FIELDS if k in data})
            run.params = run.params or {}
            run.findings = run.findings or []
            run.marks = [tuple(m) for m in json.loads(marks)]
            run.output_dropped = dropped
            runs[run_id] = run
            max_seq = max(max_seq, run.seq or 0)
        for run_id, data in db.execute("SELECT run, data FROM procs ORDER BY run, ord"):
            run = runs.get(run_id)
            if run is not None:
                proc = Proc.from_json(json.loads(data))
                run.processes[proc.pid] = proc
                max_seq = max(max_seq, proc.seq)
        for run_id, seq, t, pid, stream, text in db.execute(
                "SELECT run, seq, t, pid, stream, text FROM lines ORDER BY run, seq"):
            run = runs.get(run_id)
            if run is not None:
                run.output.append({"seq": seq, "run": run_id, "t": t, "pid": pid,
                                   "stream": stream, "text": text})
                max_seq = max(max_seq, seq)
        for table, attr in (("events", "events"), ("frames", "frames")):
            for run_id, seq, data in db.execute(
                    f"SELECT run, seq, data FROM {table} ORDER BY run, seq"):
                run = runs.get(run_id)
                if run is not None:
                    getattr(run, attr).append(json.loads(data))
                    max_seq = max(max_seq, seq)
        row = db.execute("SELECT value FROM meta WHERE key = 'seq'").fetchone()
        max_seq = max(max_seq, int(row[0]) if row else 0)
        crashed = [run for run in runs.values() if run.live]
        for run in crashed:
            self._mark_crashed(run)
        self.loaded = len(runs)
        self.load_seconds = time.perf_counter() - started
        return list(runs.values()), max_seq

    def _mark_crashed(self, run: Run) -> None:
        """Write back a run the previous server left live, as failed, with its end known."""
        times = [run.started_at]
        times += [p.started_at for p in run.processes.values() if p.started_at]
        times += [p.ended_at for p in run.processes.values() if p.ended_at]
        for items in (run.output, run.events, run.frames):
            if items:
                times.append(items[-1]["t"])
        run.state, run.ended_at, run.error = "failed", max(times), CRASHED_ERROR
        for proc in run.processes.values():
            if proc.ended_at is None:
                proc.ended_at, proc.end = run.ended_at, "killed"
        db = self._db
        db.execute("BEGIN")
        db.execute("UPDATE runs SET state = ?, summary = ? WHERE id = ?",
                   (run.state, _dumps(run.summary()), run.id))
        db.executemany("UPDATE procs SET data = ? WHERE run = ? AND pid = ?",
                       [(_dumps(p.to_json()), run.id, p.pid) for p in run.processes.values()])
        db.execute("COMMIT")

    def size_bytes(self) -> int:
        return sum(os.path.getsize(self.path + suffix) for suffix in ("", "-wal")
                   if os.path.exists(self.path + suffix))
