"""The SQLite file that keeps run history: its layout, opening it, reading it back, writing one
batch. No threads and no Hub here: ``store.py`` decides what to write and when.

Several mpdash processes may share one folder (a server and a few ``watch`` commands), so a
"database is locked" means "wait", never "damaged"; a file that is damaged or of another layout
is kept aside and a new one started.
"""
from __future__ import annotations

import json
import logging
import os
import sqlite3
import time

from mpdash import procfs
from mpdash.state import Proc, Run
from mpdash.verdict import one_headline

__all__ = ["HistoryFile", "DB_NAME", "CRASHED_ERROR", "is_busy", "identity_of", "process_identity"]

log = logging.getLogger("mpdash.store")

DB_NAME = "mpdash.sqlite3"
SCHEMA_VERSION = 1
WRITE_PATIENCE = 1.0     # s: SQLite's busy timeout; a write still locked out is made next time
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
CREATE TABLE IF NOT EXISTS stacks (
    run TEXT NOT NULL, seq INTEGER NOT NULL, data TEXT NOT NULL,
    PRIMARY KEY (run, seq)) WITHOUT ROWID;
"""
_TABLES = ("runs", "procs", "lines", "events", "frames", "stacks")
_SUMMARY_FIELDS = ("lesson", "title", "params", "kind", "command", "python", "state", "started_at",
                   "ended_at", "result", "findings", "pools", "error", "seq", "time_limit",
                   "process_limit", "rss_limit", "cwd", "source")


def run_record(run: Run) -> dict:
    """What is kept of a run besides its details: its summary plus a watched program's source
    (kept out of the summary, which every viewer receives for every run)."""
    return {**run.summary(), "source": run.source}


def _dumps(value) -> str:
    return json.dumps(value, separators=(",", ":"), default=repr)


def process_identity(pid: int) -> str:
    """``pid:start-time``: names a process for as long as it lives, even if its pid is reused."""
    stat = procfs.read_stat(pid)
    return f"{pid}:{stat.start_ticks}" if stat is not None else f"{pid}:?"


def _alive(owner: str) -> bool:
    pid, _, _ = owner.partition(":")
    return pid.isdigit() and process_identity(int(pid)) == owner


def identity_of(path: str) -> tuple[int, int] | None:
    """(device, inode) of the file at ``path`` now; None when nothing is there."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_dev, st.st_ino


class _Unreadable(Exception):
    """The history file is damaged or of another layout: it is kept aside, not used."""


def is_busy(exc: BaseException) -> bool:
    text = str(exc)
    return isinstance(exc, sqlite3.OperationalError) and ("locked" in text or "busy" in text)


class HistoryFile:
    """One open connection to ``<folder>/mpdash.sqlite3``. ``HistoryFile(path)`` opens (creating
    the tables if need be) or raises; ``moved_aside`` names a damaged file it replaced."""

    def __init__(self, path: str):
        self.path = path
        self.moved_aside: str | None = None
        try:
            self.db = self._open()
        except _Unreadable as exc:
            # A damaged file or another layout: keep it aside, say so, start a new history.
            aside = f"{path}.unreadable-{time.time_ns()}"
            for suffix in ("", "-wal", "-shm"):
                try:
                    os.replace(path + suffix, aside + suffix)
                except FileNotFoundError:
                    pass
            log.warning("run history %s could not be read (%s); moved to %s", path, exc, aside)
            self.moved_aside = aside
            self.db = self._open()
        # What "the file" is: a folder removed (or a file replaced) under an open connection is
        # no error to SQLite, which writes on into the unlinked inode; store.py compares.
        self.identity = identity_of(path)

    def _open(self) -> sqlite3.Connection:
        deadline = time.monotonic() + OPEN_PATIENCE
        while True:
            try:
                return self._open_once()
            except sqlite3.OperationalError as exc:
                if not is_busy(exc) or time.monotonic() > deadline:
                    raise
                time.sleep(0.02)
            except sqlite3.DatabaseError as exc:
                if getattr(exc, "sqlite_errorname", "") in ("SQLITE_NOTADB", "SQLITE_CORRUPT"):
                    raise _Unreadable(str(exc)) from exc
                raise

    def _open_once(self) -> sqlite3.Connection:
        # Used by the caller's thread for the load, then only by the store's writer thread.
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
                _rollback(db)
                raise
        except BaseException:
            db.close()
            raise
        return db

    def close(self) -> None:
        try:
            self.db.close()
        except sqlite3.Error:   # a connection whose file is gone: nothing more to lose
            pass

    def write(self, copies: list[tuple], deleted: list[str], seq: int, owner: str) -> int:
        """One transaction: what each copied run gained, the deleted runs, the hub's seq.
        Returns the rows written; raises (after rolling back, never a second error)."""
        rows = 0
        db = self.db
        db.execute("BEGIN")
        try:
            for run_id, summary, marks, dropped, procs, lines, events, frames, stacks, oldest \
                    in copies:
                db.execute("INSERT OR REPLACE INTO runs VALUES (?,?,?,?,?,?,?,?)",
                           (run_id, summary["started_at"], summary["state"], summary["seq"],
                            _dumps(summary), _dumps([list(m) for m in marks]), dropped, owner))
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
                db.executemany("INSERT OR IGNORE INTO stacks VALUES (?,?,?)",
                               [(run_id, s["seq"], _dumps(s)) for s in stacks])
                for table, first in oldest.items():
                    if first is not None:
                        db.execute(f"DELETE FROM {table} WHERE run = ? AND seq < ?", (run_id, first))
                rows += 1 + len(procs) + len(lines) + len(events) + len(frames) + len(stacks)
            for run_id in deleted:
                for table in _TABLES:
                    db.execute(f"DELETE FROM {table} WHERE {'id' if table == 'runs' else 'run'} = ?",
                               (run_id,))
            # The hub's seq also counts frames of no run: keep it, so it never goes back.
            db.execute("INSERT OR REPLACE INTO meta VALUES ('seq', ?)", (seq,))
            db.execute("COMMIT")
        except BaseException:
            _rollback(db)
            raise
        return rows

    # ------------------------------------------------------------------------- reading back
    def load(self) -> tuple[list[Run], int]:
        """Every stored run, oldest first, and the highest seq any of them used.

        A run stored as live is marked ``failed`` (in memory and in the file) with its
        unfinished processes ended when its last record was made.
        """
        db = self.db
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
            run.findings = one_headline(run.findings or [])   # a run kept before issue 16 has none
            run.pools = run.pools or []
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
        for table, attr in (("events", "events"), ("frames", "frames"), ("stacks", "stacks")):
            for run_id, seq, data in db.execute(
                    f"SELECT run, seq, data FROM {table} ORDER BY run, seq"):
                run = runs.get(run_id)
                if run is not None:
                    getattr(run, attr).append(json.loads(data))
                    max_seq = max(max_seq, seq)
        row = db.execute("SELECT value FROM meta WHERE key = 'seq'").fetchone()
        max_seq = max(max_seq, int(row[0]) if row else 0)
        for run in [run for run in runs.values() if run.live]:
            self._mark_crashed(run)
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
        db = self.db
        db.execute("BEGIN")
        try:
            db.execute("UPDATE runs SET state = ?, summary = ? WHERE id = ?",
                       (run.state, _dumps(run_record(run)), run.id))
            db.executemany("UPDATE procs SET data = ? WHERE run = ? AND pid = ?",
                           [(_dumps(p.to_json()), run.id, p.pid) for p in run.processes.values()])
            db.execute("COMMIT")
        except BaseException:
            _rollback(db)
            raise

    def size_bytes(self) -> int:
        return sum(os.path.getsize(self.path + suffix) for suffix in ("", "-wal")
                   if os.path.exists(self.path + suffix))


def _rollback(db: sqlite3.Connection) -> None:
    """Undo a failed transaction without a second error: SQLite has already rolled back on
    SQLITE_FULL / IOERR ("cannot rollback - no transaction is active"), and a connection whose
    file is gone may refuse even that."""
    try:
        if db.in_transaction:
            db.execute("ROLLBACK")
    except sqlite3.Error:
        pass
