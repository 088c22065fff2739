"""Getting runs back: from a damaged history (``ctxscope runs recover``) and from the
recovery files a sweep leaves in ``pending/`` while the history cannot take its points.

A damaged file is read row by row through its rowids: a broken page costs the rows on
it, not the whole table. Every run that still reads is validated like a run file
(its id included) and added to the current history, one transaction per run."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ctxscope.core.errors import RunFileError
from ctxscope.core.files import read_limited
from ctxscope.core.limits import json_loads
from ctxscope.core.results import Point, RunResult
from ctxscope.core.serialize import MAX_FILE_BYTES, point_from_dict, run_from_dict, run_to_dict
from ctxscope.store.errors import HistoryError, classify
from ctxscope.store.ids import valid_run_id
from ctxscope.store.opening import connect_readonly
from ctxscope.store.process import process_alive, this_process
from ctxscope.store.schema import has_column

if TYPE_CHECKING:
    from ctxscope.store.db import RunStore

PENDING = "pending"
IMPORT_WAIT_S = 0.2
# Rowids probed past the last row that read, when the table's largest rowid cannot be read.
_PROBE_PAST = 20_000


@dataclass(frozen=True, slots=True)
class Recovered:
    """What a damaged history still holds, and what it lost."""

    runs: tuple[RunResult, ...]
    lost_runs: int  # run rows that no longer read or validate
    lost_points: int  # point rows that no longer read, validate, or belong to a readable run


@dataclass(frozen=True, slots=True)
class RecoveryReport:
    source: Path
    added: tuple[str, ...]  # run ids now in the history
    points: int  # points in those runs
    already: int  # runs the history held complete already
    lost_runs: int
    lost_points: int

    def line(self) -> str:
        found = len(self.added) + self.already
        text = f"recovered {len(self.added)} run(s) with {self.points} point(s) from {self.source}"
        if self.already:
            text += f" ({self.already} of the {found} readable were in the history already)"
        if self.lost_runs or self.lost_points:
            text += f"; unreadable: {self.lost_runs} run(s), {self.lost_points} point(s)"
        return text


def _rows(conn: sqlite3.Connection, table: str, columns: str) -> Iterator[tuple[Any, ...] | None]:
    """Each row of ``table`` that reads (``None`` for one that does not), by rowid."""
    try:
        top: int | None = conn.execute(f"SELECT max(rowid) FROM {table}").fetchone()[0] or 0
    except sqlite3.DatabaseError:
        top = None  # the right edge of the tree is damaged: probe until rows stop
    rowid, last_hit, errors = 1, 0, 0
    while (rowid <= top) if top is not None else (rowid - last_hit <= _PROBE_PAST):
        try:
            row = conn.execute(f"SELECT {columns} FROM {table} WHERE rowid = ?", (rowid,)).fetchone()
        except sqlite3.DatabaseError:
            errors += 1
        else:
            if row is not None:
                # Probing past the end, a failed lookup may be a row or nothing at all:
                # only failures between rows that read count as lost rows.
                yield from [None] * errors
                errors, last_hit = 0, rowid
                yield row
        if top is not None and errors:
            yield from [None] * errors
            errors = 0
        rowid += 1


def read_damaged(path: Path) -> Recovered:
    """Every run and point of the history file at ``path`` that still reads."""
    try:
        conn, _ = connect_readonly(path, lenient=True)
    except HistoryError as exc:
        raise classify(exc, path, "recover") from None
    try:
        finished = "finished" if has_column(conn, "runs", "finished") else "NULL"
        quality = "quality_json" if has_column(conn, "runs", "quality_json") else "NULL"
        headers: dict[str, tuple[str, str | None, str | None, str | None, str | None]] = {}
        lost_runs = lost_points = 0
        for row in _rows(conn, "runs", f"id, status, {finished}, header_json, attention_json, {quality}"):
            if row is None or not valid_run_id(row[0]):
                lost_runs += 1
            else:
                headers[row[0]] = row[1:]
        points: dict[str, dict[int, Point]] = {}
        orphans: set[str] = set()
        for row in _rows(conn, "points", "run_id, seq, point_json"):
            if row is None or row[0] not in headers:
                lost_points += 1
                if row is not None:
                    orphans.add(row[0])
                continue
            try:
                points.setdefault(row[0], {})[int(row[1])] = point_from_dict(json.loads(row[2]))
            except (RunFileError, ValueError, TypeError):
                lost_points += 1
    except sqlite3.DatabaseError as exc:  # the schema itself no longer reads
        raise classify(exc, path, "recover") from None
    finally:
        conn.close()
    # Points whose run row is lost tell of runs the row walk could not count.
    lost_runs = max(lost_runs, len(orphans))
    runs = []
    for run_id, (status, done, header_json, attention_json, quality_json) in headers.items():
        try:
            data = json.loads(header_json or "")  # a NULL header (damage) is not JSON: the run is lost
            # Whatever was running then was cut off by the damage.
            data.update(status="interrupted" if status == "running" else status, finished=done,
                        attention=json.loads(attention_json) if attention_json else [], points=[])
            if quality_json:
                data["quality"] = json.loads(quality_json)
            run = run_from_dict(data)
            if run.id != run_id:
                raise RunFileError("header of another run")
        except (RunFileError, ValueError, TypeError):
            lost_runs += 1
            lost_points += len(points.get(run_id, {}))
            continue
        kept = points.get(run_id, {})
        runs.append(replace(run, points=tuple(kept[seq] for seq in sorted(kept))))
    return Recovered(tuple(runs), lost_runs, lost_points)


def recover_into(store: RunStore, source: Path) -> RecoveryReport:
    """Add every readable run of ``source`` to ``store``; a run it already holds is
    completed when ``source`` has more of its points, else left alone."""
    found = read_damaged(source)
    added: list[str] = []
    points = already = 0
    for run in found.runs:
        have = store.point_count(run.id)
        if have is not None and have >= len(run.points):
            already += 1
            continue
        store.upsert_run(run, live=False)
        added.append(run.id)
        points += len(run.points)
    return RecoveryReport(source, tuple(added), points, already, found.lost_runs, found.lost_points)


def recover_notice(store: RunStore, source: Path) -> str:
    """One line after a history was moved aside: what came back from it."""
    try:
        return recover_into(store, source).line()
    except HistoryError as exc:
        return f"nothing recovered from {source} ({exc.detail}); try: ctxscope runs recover {source}"


# -- recovery files ------------------------------------------------------------------
def pending_files(folder: Path) -> list[Path]:
    """Recovery files waiting to be added to the history in ``folder``."""
    try:
        return sorted((folder / PENDING).glob("*.json"))
    except OSError:
        return []


def write_pending(run: RunResult, folder: Path, *, live: bool) -> Path:
    """Keep ``run`` in ``folder/pending/<id>.json`` (atomically; raises OSError). ``live``:
    still being measured by this process, which the file records so that nobody adds
    it to the history behind the sweep's back."""
    target = folder / PENDING / f"{run.id}.json"
    target.parent.mkdir(parents=True, exist_ok=True)
    data = run_to_dict(run)
    if live:
        pid, started = this_process()
        data["recorder"] = {"pid": pid, "pid_started": started}
    part = target.with_name(target.name + ".part")
    try:
        part.write_text(json.dumps(data, allow_nan=False, ensure_ascii=False), encoding="utf-8")
        part.replace(target)
    except OSError:
        part.unlink(missing_ok=True)  # never leave half a file behind on a full disk
        raise
    return target


def import_pending(store: RunStore) -> list[str]:
    """Add the recovery files next to ``store`` to it; returns one-line notices."""
    added, broken = [], []
    for path in pending_files(store.path.parent):
        try:
            data = json_loads(read_limited(path, MAX_FILE_BYTES))
            recorder = data.pop("recorder", None) if isinstance(data, dict) else None
            run = run_from_dict(data)
        except (OSError, ValueError, RunFileError):
            broken.append(path)
            continue
        if run.status == "running":
            if isinstance(recorder, dict) and process_alive(recorder.get("pid"), recorder.get("pid_started")):
                continue  # its sweep still runs and adds it itself
            run = replace(run, status="interrupted")
        try:
            # Not the full busy timeout: an open (the app's History tab included) must not
            # stall on a history still locked; the files simply wait for the next start.
            with store.waiting(IMPORT_WAIT_S):
                store.upsert_run(run, live=False)
        except HistoryError:
            break
        path.unlink(missing_ok=True)
        added.append(run.id)
    notices = []
    if added:
        notices.append(f"added {len(added)} run(s) kept while the history was unavailable: {', '.join(added)}")
    for path in broken:
        kept = path.with_name(path.name + ".unreadable")
        try:
            path.rename(kept)  # said once, not at every start
        except OSError:
            kept = path
        notices.append(f"{kept} is not a readable run file; left in place")
    return notices
