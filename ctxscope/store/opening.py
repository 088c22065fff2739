"""Opening the history file: writable (WAL, migrated) or read-only (``mode=ro``, else
``immutable=1``), after an integrity check that moves a damaged file aside.

A damaged history is never written into: :func:`check_and_quarantine` runs SQLite's
``quick_check`` before the first open of a file in this process (and again whenever
the file changed), and a file that fails it is renamed, with its ``-wal`` and
``-shm``, to ``runs-damaged-<time>.sqlite3`` beside it. Renaming needs no free space,
so it works on a full disk; nothing is ever deleted."""

from __future__ import annotations

import sqlite3
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from ctxscope.core.paths import data_dir_problem
from ctxscope.store.errors import (HistoryDamaged, HistoryError, HistoryLocked, HistoryUnusable, busy_timeout,
                                    classify)
from ctxscope.store.schema import create_in_memory, migrate, version_of

SIDE_FILES = ("-wal", "-shm")

# Files that passed quick_check, by path: (inode, size, mtime) when they did. A long-
# running app re-checks only after the main file changed (WAL checkpoints change it).
_verified: dict[str, tuple[int, int, int]] = {}
_verified_lock = threading.Lock()


@dataclass(frozen=True, slots=True)
class Quarantine:
    """A damaged history that was moved aside: where it went, and what was wrong."""

    original: Path
    moved_to: Path
    problem: str

    def notice(self) -> str:
        return (f"the run history {self.original} was damaged ({self.problem}): moved it to {self.moved_to} "
                "and started a fresh one")


def _signature(path: Path) -> tuple[int, int, int] | None:
    try:
        st = path.stat()
    except OSError:
        return None
    return st.st_ino, st.st_size, st.st_mtime_ns


def forget_verified(path: Path) -> None:
    """Check ``path`` again on its next open (damage was met while using it)."""
    with _verified_lock:
        _verified.pop(str(path.absolute()), None)


def connect_writable(path: Path) -> sqlite3.Connection:
    """A read-write connection in WAL mode with the tables up to date."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        problem = data_dir_problem(path.parent)
        raise (HistoryUnusable(problem) if problem else classify(exc, path, "create")) from None
    conn = None
    try:
        conn = sqlite3.connect(path, timeout=busy_timeout(), isolation_level=None)
        conn.execute("PRAGMA journal_mode=WAL")
        # FULL: each committed point is on disk before the next one is measured.
        conn.execute("PRAGMA synchronous=FULL")
        conn.execute("PRAGMA foreign_keys=ON")
        migrate(conn, path)
        return conn
    except (sqlite3.Error, OSError, HistoryError) as exc:
        if conn is not None:
            conn.close()
        raise classify(exc, path, "open") from None


def connect_readonly(path: Path, *, lenient: bool = False) -> tuple[sqlite3.Connection, bool]:
    """A connection that never writes: ``(conn, complete)``. ``mode=ro`` first; where even
    the shared-memory file cannot be made (a read-only or full folder), ``immutable=1``,
    which skips the ``-wal`` (``complete`` is then false if one holds data). No file
    yet: an empty history in memory. ``lenient`` (recovery) loads a damaged schema too:
    a table whose root page lies past a truncated end would make SQLite refuse the file."""
    if not path.exists():
        return create_in_memory(), True
    last: BaseException | None = None
    for query in ("mode=ro", "mode=ro&immutable=1"):
        conn = None
        try:
            conn = sqlite3.connect(f"{path.absolute().as_uri()}?{query}", uri=True, timeout=busy_timeout(),
                                   isolation_level=None)
            if lenient:
                conn.execute("PRAGMA writable_schema=ON")  # relaxes schema checks; the connection is read-only
            conn.execute("SELECT count(*) FROM sqlite_master").fetchone()  # opens the file (and -shm) now
            version_of(conn, path)
            wal = path.with_name(path.name + "-wal")
            complete = "immutable" not in query or not wal.exists() or wal.stat().st_size == 0
            return conn, complete
        except (sqlite3.Error, OSError) as exc:
            if conn is not None:
                conn.close()
            error = classify(exc, path, "read")
            if isinstance(error, (HistoryDamaged, HistoryLocked)):
                raise error from None  # immutable would read around a lock or damage: never
            last = exc
        except HistoryError:
            if conn is not None:
                conn.close()
            raise
    assert last is not None
    raise classify(last, path, "read") from None


def integrity_problem(conn: sqlite3.Connection) -> str | None:
    """What SQLite's ``quick_check`` finds wrong (its first finding), or ``None``."""
    try:
        rows = [str(r[0]) for r in conn.execute("PRAGMA quick_check").fetchall()]
    except sqlite3.DatabaseError as exc:
        if isinstance(classify(exc, Path("."), "check"), HistoryDamaged):
            return str(exc)
        raise
    if rows == ["ok"]:
        return None
    # quick_check lists every broken cell: the first finding says enough in one line.
    first = next((line for line in "\n".join(rows).splitlines() if line and not line.startswith("***")), "damaged")
    return first if len(first) <= 120 else first[:117] + "..."


def _check(path: Path) -> str | None:
    """Damage found in the file at ``path``; raises HistoryError when it cannot be read
    at all for another reason (locked, permissions)."""
    try:
        conn, _ = connect_readonly(path)
    except HistoryDamaged as exc:
        return exc.detail
    try:
        return integrity_problem(conn)
    except sqlite3.Error as exc:
        raise classify(exc, path, "check") from None
    finally:
        conn.close()


def _free_name(path: Path) -> Path:
    stamp = time.strftime("%Y%m%d-%H%M%S")
    for n in range(1000):
        target = path.with_name(f"{path.stem}-damaged-{stamp}{'-' + str(n) if n else ''}{path.suffix}")
        if not any(Path(str(target) + s).exists() for s in ("", *SIDE_FILES)):
            return target
    raise FileExistsError(f"no free name beside {path}")


def _move_aside(path: Path) -> Path | None:
    """Rename the file and its side files; ``None`` if another process already did."""
    target = _free_name(path)
    moved: list[tuple[Path, Path]] = []
    try:
        # The -wal first: a fresh history must never meet the old one's log under its name.
        for suffix in (*SIDE_FILES, ""):
            source, dest = Path(str(path) + suffix), Path(str(target) + suffix)
            try:
                source.rename(dest)
            except FileNotFoundError:
                if suffix == "":
                    raise
                continue
            moved.append((source, dest))
    except FileNotFoundError:
        for source, dest in reversed(moved):  # put the side files back: someone else moved it
            dest.rename(source)
        return None
    except OSError:
        for source, dest in reversed(moved):
            dest.rename(source)
        raise
    return target


def check_and_quarantine(path: Path) -> Quarantine | None:
    """Check the history at ``path`` before it is used; a damaged one is moved aside
    (returned) so the caller starts a fresh history. Raises :class:`HistoryDamaged`
    when it is damaged and cannot be moved (a read-only folder)."""
    key = str(path.absolute())
    signature = _signature(path)
    if signature is None:
        return None
    with _verified_lock:
        if _verified.get(key) == signature:
            return None
    try:
        problem = _check(path)
    except HistoryError:
        return None  # locked or unreadable right now: the open that follows says so
    if problem is None:
        with _verified_lock:
            _verified[key] = signature
        return None
    try:
        moved = _move_aside(path)
    except OSError as exc:
        raise HistoryDamaged(f"the run history {path} is damaged ({problem}) and cannot be moved aside "
                             f"({exc.strerror}); point CTXSCOPE_HOME at a writable folder and run "
                             f"`ctxscope runs recover {path}`") from None
    forget_verified(path)
    return None if moved is None else Quarantine(path, moved, problem)


def quarantine_now(path: Path, problem: str) -> Quarantine | None:
    """Move aside a history found damaged while in use (``quick_check`` had passed: the
    damage lies where it does not look), so that the next command starts fresh instead
    of meeting it again. ``None`` when it cannot be moved (or already was)."""
    forget_verified(path)
    try:
        moved = _move_aside(path)
    except OSError:
        return None
    return None if moved is None else Quarantine(path, moved, problem)


def damaged_files(folder: Path) -> list[Path]:
    """Histories moved aside in ``folder``, oldest first."""
    try:
        return sorted(p for p in folder.glob("*-damaged-*.sqlite3") if p.is_file())
    except OSError:
        return []
