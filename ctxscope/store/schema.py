"""The history's tables and their migrations, tracked by SQLite's ``user_version``.

Version 1: runs + points. Version 2 adds ``runs.pid_started`` (the recording process's
start time), so a run whose process id was reused by another process is still seen
as interrupted. Version 3 adds ``runs.quality_json`` (the quality passes' loss points and
needle trials, appended as they are measured). Older databases are migrated on the first writable open and read as
they are by read-only ones."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from ctxscope.store.errors import HistoryUnusable

USER_VERSION = 3

_TABLES = (
    """CREATE TABLE IF NOT EXISTS runs (
    id TEXT PRIMARY KEY,
    created TEXT NOT NULL,
    status TEXT NOT NULL,
    finished TEXT,
    pid INTEGER,
    model_source TEXT NOT NULL,
    architecture TEXT NOT NULL,
    device TEXT NOT NULL,
    dtype TEXT NOT NULL,
    attn TEXT NOT NULL,
    batch_size INTEGER NOT NULL,
    header_json TEXT NOT NULL,
    attention_json TEXT,
    pid_started REAL,
    quality_json TEXT
)""",
    """CREATE TABLE IF NOT EXISTS points (
    run_id TEXT NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
    seq INTEGER NOT NULL,
    mode TEXT NOT NULL,
    length INTEGER NOT NULL,
    status TEXT NOT NULL,
    point_json TEXT NOT NULL,
    PRIMARY KEY (run_id, seq)
)""",
)


def version_of(conn: sqlite3.Connection, path: Path) -> int:
    """The database's schema version; a newer one than this ctxscope knows is refused."""
    version = int(conn.execute("PRAGMA user_version").fetchone()[0])
    if version > USER_VERSION:
        raise HistoryUnusable(f"the run history {path} was written by a newer ctxscope (schema {version}, this "
                              f"one reads up to {USER_VERSION}): upgrade ctxscope, or set CTXSCOPE_HOME elsewhere")
    return version


def has_column(conn: sqlite3.Connection, table: str, column: str) -> bool:
    return any(row[1] == column for row in conn.execute(f"PRAGMA table_info({table})"))


def migrate(conn: sqlite3.Connection, path: Path) -> None:
    """Create or upgrade the tables, in one transaction, only when the version is old:
    an up-to-date database is opened without taking the write lock, so a second
    process holding it does not stop a reader or a sweep from starting."""
    if version_of(conn, path) == USER_VERSION:
        return
    conn.execute("BEGIN IMMEDIATE")
    try:
        if version_of(conn, path) < USER_VERSION:  # another process may have just done it
            for statement in _TABLES:
                conn.execute(statement)
            if not has_column(conn, "runs", "pid_started"):  # a version-1 database
                conn.execute("ALTER TABLE runs ADD COLUMN pid_started REAL")
            if not has_column(conn, "runs", "quality_json"):  # a version-1 or -2 database
                conn.execute("ALTER TABLE runs ADD COLUMN quality_json TEXT")
            conn.execute(f"PRAGMA user_version={USER_VERSION}")
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:  # some errors (a full disk) have rolled it back already
            conn.execute("ROLLBACK")
        raise


def create_in_memory() -> sqlite3.Connection:
    """An empty history that lives in memory: what a reader sees when there is no file yet
    (and none can or should be created just to list nothing)."""
    conn = sqlite3.connect(":memory:", isolation_level=None)
    for statement in _TABLES:
        conn.execute(statement)
    conn.execute(f"PRAGMA user_version={USER_VERSION}")
    return conn
