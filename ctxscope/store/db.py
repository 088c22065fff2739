"""Run history in SQLite (WAL): the run row is written when a sweep starts and every
point is committed the moment it is measured, so a crash loses at most one point.

Every SQLite or OS error leaves this module as a one-line :class:`HistoryError`
(locked, full, damaged, unusable); a damaged file is moved aside before it is opened
(see :mod:`ctxscope.store.opening`) and never written into."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path

from ctxscope.core.blocks import AttentionEntry
from ctxscope.core.errors import BadInputError, CtxscopeError, RunFileError
from ctxscope.core.quality.records import LossPoint, NeedleTrial, QualityResult, quality_from_dict, quality_to_dict
from ctxscope.core.results import Point, RunHeader, RunResult
from ctxscope.core.serialize import header_to_dict, point_from_dict, point_to_dict, run_from_dict
from ctxscope.store.errors import HistoryDamaged, HistoryError, classify
from ctxscope.store.ids import check_run_id, valid_run_id
from ctxscope.store.opening import connect_readonly, connect_writable, quarantine_now
from ctxscope.store.process import process_alive, this_process
from ctxscope.store.schema import has_column
from ctxscope.store.summary import RunSummary, list_facts


class RunStore:
    """A connection to the run database. Use as a context manager, or call :meth:`close`.

    Open the user's history with :func:`ctxscope.store.history.open_history`, which
    checks the file first (a damaged one is moved aside, never written into) and adds
    waiting recovery files; this class only connects.

    ``readonly=True`` never writes to the file (``mode=ro``, else ``immutable=1``), so
    listing and reading work in a read-only or full data directory; with no file yet
    it is an empty history. ``notices`` holds one-line messages for the user (from
    :func:`open_history`: a damaged history moved aside and what was recovered, runs
    added from recovery files, why new runs cannot be kept)."""

    def __init__(self, path: str | Path, *, readonly: bool = False) -> None:
        # Only connects: moving a damaged file aside, recovering it and adding waiting
        # recovery files is the policy of :func:`ctxscope.store.history.open_history`.
        self.path = Path(path)
        self.readonly = readonly
        self.notices: list[str] = []
        if readonly:
            self.conn, complete = connect_readonly(self.path)
            if not complete:
                self.notices.append(f"the history's folder {self.path.parent} cannot be written: runs recorded since "
                                    "its last checkpoint (in runs.sqlite3-wal) are not shown")
        else:
            self.conn = connect_writable(self.path)
        self._has_pid_started = has_column(self.conn, "runs", "pid_started")
        self._has_quality = has_column(self.conn, "runs", "quality_json")  # a read-only older history lacks it

    def __enter__(self) -> RunStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self.conn.close()

    @contextmanager
    def _guard(self, doing: str) -> Iterator[None]:
        try:
            yield
        except sqlite3.Error as exc:
            error = classify(exc, self.path, doing)
            if isinstance(error, HistoryDamaged) and self.path.exists():
                self.conn.close()  # never another write into it
                moved = quarantine_now(self.path, error.detail)
                if moved is not None:
                    error = HistoryDamaged(f"{moved.notice()}; run the command again (`ctxscope runs recover` "
                                           "brings back what still reads)", error.detail)
            raise error from None

    @contextmanager
    def _transaction(self, doing: str) -> Iterator[None]:
        """One write transaction: all of it is stored, or none of it."""
        with self._guard(doing):
            self.conn.execute("BEGIN IMMEDIATE")
            try:
                yield
                self.conn.execute("COMMIT")
            except BaseException:
                if self.conn.in_transaction:
                    try:
                        self.conn.execute("ROLLBACK")
                    except sqlite3.Error:
                        pass  # the connection is closed with the store; the first error is the one to report
                raise

    @contextmanager
    def waiting(self, seconds: float) -> Iterator[None]:
        """Wait at most ``seconds`` for a lock inside this block (retries mid-sweep must
        not stall measuring for the full busy timeout)."""
        with self._guard("use"):
            before = int(self.conn.execute("PRAGMA busy_timeout").fetchone()[0])
            self.conn.execute(f"PRAGMA busy_timeout={int(seconds * 1000)}")
        try:
            yield
        finally:
            with self._guard("use"):
                self.conn.execute(f"PRAGMA busy_timeout={before}")

    # -- writing ------------------------------------------------------------------
    def _insert_run(self, header: RunHeader, status: str, *, live: bool, ignore: bool = False) -> None:
        check_run_id(header.id)
        s = header.settings
        pid, started = this_process() if live else (None, None)
        self.conn.execute(
            f"INSERT {'OR IGNORE ' if ignore else ''}INTO runs (id, created, status, pid, pid_started, model_source,"
            " architecture, device, dtype, attn, batch_size, header_json) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (header.id, header.created, status, pid, started, header.model.source, header.model.architecture,
             s.device, s.dtype, s.attn_implementation, s.batch_size, json.dumps(header_to_dict(header))))

    def _insert_points(self, run_id: str, points: list[tuple[int, Point]]) -> None:
        self.conn.executemany("INSERT OR REPLACE INTO points VALUES (?, ?, ?, ?, ?, ?)",
                              [(run_id, seq, p.mode, p.length, p.status, json.dumps(point_to_dict(p)))
                               for seq, p in points])

    def create_run(self, header: RunHeader) -> None:
        """The run row, marked running by this process, when a sweep starts."""
        with self._transaction("write to"):
            self._insert_run(header, "running", live=True)

    def add_point(self, run_id: str, seq: int, point: Point) -> None:
        """Commit one measured point (replacing ``seq`` if it was written before)."""
        with self._transaction("write to"):
            self._insert_points(run_id, [(seq, point)])

    def add_attention(self, run_id: str, entries: list[AttentionEntry]) -> None:
        """Append a length's attention entries (statistics; maps live in the .npz)."""
        with self._transaction("write to"):
            row = self.conn.execute("SELECT attention_json FROM runs WHERE id = ?", (run_id,)).fetchone()
            current = json.loads(row[0]) if row and row[0] else []
            self.conn.execute("UPDATE runs SET attention_json = ? WHERE id = ?",
                              (json.dumps(current + entries, allow_nan=False), run_id))

    def add_quality(self, run_id: str, items: list[LossPoint | NeedleTrial]) -> None:
        """Append quality records (loss points, needle trials) to the run's ``quality_json``."""
        with self._transaction("write to"):
            row = self.conn.execute("SELECT quality_json FROM runs WHERE id = ?", (run_id,)).fetchone()
            current = quality_from_dict(json.loads(row[0])) if row and row[0] else QualityResult()
            for item in items:
                current = current.add(item)
            self.conn.execute("UPDATE runs SET quality_json = ? WHERE id = ?",
                              (json.dumps(quality_to_dict(current), allow_nan=False), run_id))

    def finish_run(self, run_id: str, status: str, finished: str | None) -> None:
        with self._transaction("write to"):
            self.conn.execute("UPDATE runs SET status = ?, finished = ? WHERE id = ?", (status, finished, run_id))

    def save_run(self, run: RunResult) -> int | None:
        """Store a finished run (e.g. one opened from a file) in one transaction: a
        killed or failed import leaves nothing behind, and can simply be run again.

        A run already here is refused, unless what is here is a part of it: a sweep
        whose history filled up (or failed) mid-run left its first points here and the
        whole run in its ``--out`` or fallback file, and importing that file is what
        it told the user to do. Then the file's run replaces the part; returns how many
        points the history held of it (``None``: the run was new)."""
        with self._transaction("write to"):
            row = self.conn.execute(f"SELECT r.status, r.pid, {self._started_column()}, r.header_json FROM runs r "
                                    "WHERE r.id = ?", (run.id,)).fetchone()
            held = None
            if row is not None:
                held = self._part_of(run, _status(*row[:3]), row[3])
                if held is None:
                    raise BadInputError(f"run {run.id} is already in the history")
            self._write_whole(run, run.status, live=False)
            return held

    def _part_of(self, run: RunResult, status: str, header_json: str | None) -> int | None:
        """The number of points stored of ``run`` when the stored run is an unfinished
        copy of it (same header, its points the file's first ones), else ``None``."""
        def as_stored(value: object) -> object:  # as JSON gives it back: lists, not tuples
            return json.loads(json.dumps(value))

        if status != "interrupted" or header_json is None or json.loads(header_json) != as_stored(
                header_to_dict(run.header)):
            return None
        rows = self.conn.execute("SELECT point_json FROM points WHERE run_id = ? ORDER BY seq", (run.id,)).fetchall()
        mine = as_stored([point_to_dict(p) for p in run.points[:len(rows)]])
        if len(rows) > len(run.points) or [json.loads(r[0]) for r in rows] != mine:
            return None
        return len(rows)

    def upsert_run(self, run: RunResult, *, live: bool) -> None:
        """Make the history hold exactly what ``run`` holds, in one transaction, whatever
        of it was stored before (a sweep catching up after the history was locked, a
        recovery file being added). ``live``: the run is still being measured here."""
        with self._transaction("write to"):
            self._write_whole(run, "running" if live else run.status, live=live)

    def _write_whole(self, run: RunResult, status: str, *, live: bool) -> None:
        self._insert_run(run.header, status, live=live, ignore=True)
        self._insert_points(run.id, list(enumerate(run.points)))
        self.conn.execute("DELETE FROM points WHERE run_id = ? AND seq >= ?", (run.id, len(run.points)))
        self.conn.execute("UPDATE runs SET status = ?, finished = ?, attention_json = ? WHERE id = ?",
                          (status, None if live else run.finished,
                           json.dumps(list(run.attention), allow_nan=False) if run.attention else None, run.id))
        if run.quality is not None:
            self.conn.execute("UPDATE runs SET quality_json = ? WHERE id = ?",
                              (json.dumps(quality_to_dict(run.quality), allow_nan=False), run.id))

    def delete_run(self, run_id: str) -> None:
        """Delete a run, its points and its attention maps (only ever inside the
        history's own ``attention`` folder: an id that is not a plain file name, which
        only a tampered database can hold, deletes the row and touches no file)."""
        from ctxscope.store.attention_files import store_path

        full = self.resolve(run_id)
        with self._transaction("delete from"):
            # Checked inside the write transaction: the sweep cannot start writing between.
            row = self.conn.execute(f"SELECT r.status, r.pid, {self._started_column()} FROM runs r WHERE r.id = ?",
                                    (full,)).fetchone()
            if row is not None and _status(*row) == "running":
                # Its sweep would store it again, whole, at its next point or its end.
                raise BadInputError(f"run {full} is being measured right now (process {row[1]}): stop that sweep "
                                    "first (Ctrl-C or Cancel), then delete the run")
            self.conn.execute("DELETE FROM runs WHERE id = ?", (full,))
        if valid_run_id(full):
            store_path(full, self.path.parent).unlink(missing_ok=True)

    # -- reading ------------------------------------------------------------------
    def resolve(self, prefix: str) -> str:
        """Full id from an id or a unique prefix of one."""
        prefix = prefix.strip()
        if not prefix:
            raise BadInputError("empty run id")
        with self._guard("read"):
            rows = self.conn.execute("SELECT id FROM runs WHERE id = ? OR substr(id, 1, ?) = ? ORDER BY id",
                                     (prefix, len(prefix), prefix)).fetchall()
        ids: list[str] = sorted({r[0] for r in rows})
        if prefix in ids:
            return prefix
        if not ids:
            raise BadInputError(f"no run with id {prefix!r} (see: ctxscope runs list)")
        if len(ids) > 1:
            more = f" and {len(ids) - 5} more" if len(ids) > 5 else ""  # say that the list is cut
            raise BadInputError(f"run id {prefix!r} is ambiguous: {len(ids)} runs match ({', '.join(ids[:5])}{more}); "
                                "give more of the id")
        return ids[0]

    def point_count(self, run_id: str) -> int | None:
        """Points stored for exactly this id, or ``None`` when there is no such run."""
        with self._guard("read"):
            if not self.conn.execute("SELECT 1 FROM runs WHERE id = ?", (run_id,)).fetchone():
                return None
            return int(self.conn.execute("SELECT COUNT(*) FROM points WHERE run_id = ?", (run_id,)).fetchone()[0])

    def _started_column(self) -> str:
        return "r.pid_started" if self._has_pid_started else "NULL"

    def list_runs(self) -> list[RunSummary]:
        with self._guard("read"):
            rows = self.conn.execute(
                f"SELECT r.id, r.created, r.status, r.pid, {self._started_column()}, r.model_source, r.architecture,"
                " r.device, r.dtype, r.attn, r.batch_size, COALESCE(SUM(p.status = 'ok'), 0), COUNT(p.seq),"
                " r.header_json FROM runs r LEFT JOIN points p ON p.run_id = r.id GROUP BY r.id"
                " ORDER BY r.created, r.id").fetchall()
        out = []
        for r in rows:
            planned, host, quality, attention = list_facts(r[13])
            out.append(RunSummary(id=r[0], created=r[1], status=_status(r[2], r[3], r[4]), model_source=r[5],
                                  architecture=r[6], device=r[7], dtype=r[8], attn=r[9], batch_size=r[10],
                                  points_ok=int(r[11]), points_total=int(r[12]), points_planned=planned, host=host,
                                  quality=quality, attention=attention))
        return out

    def get_run(self, run_id: str) -> RunResult:
        full = self.resolve(run_id)
        with self._guard("read"):
            quality_column = "r.quality_json" if self._has_quality else "NULL"
            status, finished, pid, started, header_json, attention_json, quality_json = self.conn.execute(
                f"SELECT r.status, r.finished, r.pid, {self._started_column()}, r.header_json, r.attention_json,"
                f" {quality_column} FROM runs r WHERE r.id = ?", (full,)).fetchone()
            rows = self.conn.execute("SELECT point_json FROM points WHERE run_id = ? ORDER BY seq",
                                     (full,)).fetchall()
        try:
            data = json.loads(header_json)
            if not isinstance(data, dict) or data.get("id") != full:
                raise RunFileError("its header does not belong to it")
            data.update(status=_status(status, pid, started), finished=finished,
                        attention=json.loads(attention_json) if attention_json else [], points=[])
            if quality_json:
                data["quality"] = json.loads(quality_json)
            run = run_from_dict(data)  # validates the id as strictly as a file's
            points = tuple(point_from_dict(json.loads(r[0]), f"points[{i}]") for i, r in enumerate(rows))
        except (RunFileError, ValueError) as exc:
            raise CtxscopeError(f"run {full!r} is damaged in the history: {exc}") from None
        return replace(run, points=points)


def _status(status: str, pid: int | None, started: float | None) -> str:
    # A run still marked running whose process is gone, or whose process id now belongs
    # to another process, was killed: it reads as interrupted.
    return "interrupted" if status == "running" and not process_alive(pid, started) else status

