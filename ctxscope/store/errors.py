"""What can go wrong with the run history, as one-line errors a user can act on.

A locked, full, damaged or read-only history is the user's situation, not a bug: each
becomes a :class:`HistoryError` (a ``CtxscopeError``, so the CLI prints one line and
exits 2) instead of a raw ``sqlite3`` exception."""

from __future__ import annotations

import errno
import os
import sqlite3
from pathlib import Path

from ctxscope.core.errors import CtxscopeError
from ctxscope.core.paths import fmt_free

# SQLite's primary result codes (its stable C API). The sqlite3 module names them only
# from Python 3.11; on 3.10 ``sqlite3.SQLITE_BUSY`` does not exist.
_BUSY, _LOCKED, _CORRUPT, _FULL, _NOTADB = 5, 6, 11, 13, 26

# How long a write waits for another process's transaction before giving up (seconds).
BUSY_TIMEOUT_S = 10.0


def busy_timeout() -> float:
    """``CTXSCOPE_HISTORY_WAIT`` overrides :data:`BUSY_TIMEOUT_S` (tests, slow disks)."""
    try:
        return max(0.0, float(os.environ.get("CTXSCOPE_HISTORY_WAIT", BUSY_TIMEOUT_S)))
    except ValueError:
        return BUSY_TIMEOUT_S


class HistoryError(CtxscopeError):
    """The run history cannot be used right now; ``str()`` says why and what to do,
    ``detail`` is SQLite's or the system's own words."""

    def __init__(self, message: str, detail: str | None = None) -> None:
        super().__init__(message)
        self.detail = detail or message


class HistoryLocked(HistoryError):
    """Another process holds a write transaction longer than we wait."""


class HistoryFull(HistoryError):
    """No space left where the history lives."""


class HistoryDamaged(HistoryError):
    """The database file is malformed (truncated, overwritten pages, not SQLite)."""


class HistoryUnusable(HistoryError):
    """The folder or file cannot be created, opened or written (permissions, read-only)."""


def _code(exc: sqlite3.Error) -> int:
    # The primary result code: extended codes (e.g. SQLITE_IOERR_WRITE) keep it in the low byte.
    return (getattr(exc, "sqlite_errorcode", None) or 0) & 0xFF


def classify(exc: BaseException, path: Path, doing: str = "use") -> HistoryError:
    """Turn a sqlite3/OS error met while ``doing`` something with the history at ``path``
    into the matching :class:`HistoryError`."""
    if isinstance(exc, HistoryError):
        return exc
    text = str(exc)
    if isinstance(exc, sqlite3.Error):
        code = _code(exc)
        if code in (_BUSY, _LOCKED) or "locked" in text:
            return HistoryLocked(f"the run history {path} is locked by another process (waited "
                                 f"{busy_timeout():g} s to {doing} it); try again when that process is done")
        if code == _FULL or "disk is full" in text:
            return HistoryFull(f"no space left for the run history {path} ({fmt_free(path.parent)})")
        if code in (_CORRUPT, _NOTADB) or "malformed" in text:
            return HistoryDamaged(f"the run history {path} is damaged ({text}); the next ctxscope command moves "
                                  "it aside and recovers what still reads", text)
        return HistoryUnusable(f"cannot {doing} the run history {path} ({text}; {fmt_free(path.parent)}); "
                               "set CTXSCOPE_HOME to a writable folder")
    if isinstance(exc, OSError):
        if exc.errno in (errno.ENOSPC, errno.EDQUOT):
            return HistoryFull(f"no space left for the run history {path} ({fmt_free(path.parent)})")
        return HistoryUnusable(f"cannot {doing} the run history {path} ({exc.strerror or exc}); "
                               "set CTXSCOPE_HOME to a writable folder")
    return HistoryUnusable(f"cannot {doing} the run history {path} ({type(exc).__name__}: {text})")


def file_problem(exc: OSError, path: Path) -> str:
    """One line for a file that could not be written: the path, the reason, the free space."""
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return f"{path}: no space left on the device ({fmt_free(path.parent)})"
    if exc.errno == errno.EROFS:
        return f"{path}: the file system is read-only"
    return f"{path}: {exc.strerror or exc}"
