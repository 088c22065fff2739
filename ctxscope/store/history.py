"""Opening the user's run history: the policy around a connection. Before the first
open the file is checked (a damaged one is moved aside, never written into, and
recovered into a fresh history); runs kept in recovery files while the history was
unavailable are added. :class:`~ctxscope.store.db.RunStore` itself only connects."""

from __future__ import annotations

from pathlib import Path

from ctxscope.core.paths import data_dir_problem
from ctxscope.store import recovery
from ctxscope.store.db import RunStore
from ctxscope.store.errors import HistoryError
from ctxscope.store.opening import Quarantine, check_and_quarantine


def open_history(path: str | Path, *, readonly: bool = False) -> RunStore:
    """The history at ``path``, checked and tidied, with one-line ``notices`` for the
    user: a damaged file moved aside and what was recovered from it, runs added from
    recovery files, why new runs cannot be kept.

    ``readonly``: never writes to the file; the tidying is done through a short-lived
    writable connection when the folder allows one, and skipped (said in a notice)
    when it does not. Raises :class:`~ctxscope.store.errors.HistoryError` (one line)."""
    path = Path(path)
    quarantine = check_and_quarantine(path)
    notices = [quarantine.notice()] if quarantine is not None else []
    if readonly:
        if quarantine is not None or recovery.pending_files(path.parent):
            notices += _tidy_with_writer(path, quarantine)
        if not path.exists() and (problem := data_dir_problem(path.parent)):
            notices.append(f"{problem}: new runs cannot be kept in the history")
        store = RunStore(path, readonly=True)
    else:
        store = RunStore(path)
        try:
            if quarantine is not None:
                notices.append(recovery.recover_notice(store, quarantine.moved_to))
            notices += recovery.import_pending(store)
        except BaseException:
            store.close()
            raise
    store.notices[:0] = notices
    return store


def _tidy_with_writer(path: Path, quarantine: Quarantine | None) -> list[str]:
    """For a reader: recover a quarantined history and add waiting recovery files
    through a short-lived writable store, when the folder allows one."""
    notices: list[str] = []
    try:
        with open_history(path) as writer:
            if quarantine is not None:
                notices.append(recovery.recover_notice(writer, quarantine.moved_to))
            notices += writer.notices
    except HistoryError as exc:
        if quarantine is not None:
            notices.append(f"nothing recovered yet ({exc}); later: ctxscope runs recover {quarantine.moved_to}")
    return notices
