"""The history's health for ``ctxscope doctor``: looked at, never changed (a damaged
file is reported, not moved; nothing is migrated or imported)."""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from pathlib import Path

from ctxscope.core.paths import data_dir_problem, fmt_free
from ctxscope.store.errors import HistoryDamaged, HistoryError, classify
from ctxscope.store.opening import connect_readonly, damaged_files, integrity_problem
from ctxscope.store.recovery import pending_files
from ctxscope.core.units import plural

WRITABLE_FIX = "set CTXSCOPE_HOME to a writable folder with free space"


@dataclass(frozen=True, slots=True)
class Finding:
    """One line of the report: ``status`` is ok | warn | fail | info."""

    name: str
    status: str
    detail: str
    fix: str | None = None


def _lock_free(path: Path) -> str | None:
    """Why no write could start now (another process holds the history), or ``None``."""
    try:
        conn = sqlite3.connect(path, timeout=1.0, isolation_level=None)
    except sqlite3.Error as exc:
        return str(exc)
    try:
        conn.execute("BEGIN IMMEDIATE")  # taken and given back at once: nothing is written
        conn.execute("ROLLBACK")
        return None
    except sqlite3.Error as exc:
        return str(classify(exc, path, "write to"))
    finally:
        conn.close()


def _contents(path: Path) -> Finding:
    try:
        conn, complete = connect_readonly(path)
    except HistoryError as exc:
        damaged = isinstance(exc, HistoryDamaged)
        return Finding("run history", "fail" if damaged else "warn", str(exc),
                       "run any ctxscope command (e.g. `ctxscope runs list`): it moves the file aside and "
                       "recovers what reads" if damaged else WRITABLE_FIX)
    try:
        problem = integrity_problem(conn)
        if problem is not None:
            return Finding("run history", "fail", f"{path} is damaged ({problem})",
                           "run any ctxscope command (e.g. `ctxscope runs list`): it moves the file aside and "
                           "recovers what reads into a fresh history")
        runs = int(conn.execute("SELECT count(*) FROM runs").fetchone()[0])
    except sqlite3.Error as exc:
        return Finding("run history", "warn", str(classify(exc, path, "read")), WRITABLE_FIX)
    finally:
        conn.close()
    partial = "" if complete else " (read without its -wal: the folder is not writable)"
    return Finding("run history", "ok", f"{path} ({plural(runs, 'run')}, integrity ok){partial}")


def history_findings(path: Path) -> list[Finding]:
    """The data directory, the history file, damaged histories kept, runs waiting."""
    out = []
    problem = data_dir_problem(path.parent)
    if problem is not None:
        out.append(Finding("data directory", "fail", f"{problem}: runs cannot be stored (sweeps still measure; "
                                                     "use --out)", WRITABLE_FIX))
    else:
        out.append(Finding("data directory", "ok", f"{path.parent} ({fmt_free(path.parent)})"))
    if not path.exists():
        out.append(Finding("run history", "ok" if problem is None else "info",
                           f"{path}: no runs yet (made by the first sweep)"))
    else:
        found = _contents(path)
        out.append(found)
        if found.status == "ok" and problem is None and (locked := _lock_free(path)):
            out.append(Finding("run history lock", "warn", locked,
                               "another program (a database browser, a backup tool) holds the history: close it"))
    kept = damaged_files(path.parent)
    if kept:
        out.append(Finding("damaged histories", "warn",
                           f"{len(kept)} kept beside the history: {', '.join(p.name for p in kept[:3])}"
                           + (" …" if len(kept) > 3 else ""),
                           "`ctxscope runs recover` adds every run that still reads from them; delete them after"))
    waiting = pending_files(path.parent)
    if waiting:
        out.append(Finding("runs waiting", "warn", f"{len(waiting)} run(s) measured while the history was "
                                                   f"unavailable wait in {waiting[0].parent}",
                           "they are added the next time ctxscope opens a usable history (e.g. `ctxscope runs list`)"))
    return out
