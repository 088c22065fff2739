"""Run history in SQLite (WAL): the run row is written when a sweep starts and every
point is committed the moment it is measured, so a crash loses at most one point."""

from __future__ import annotations

import json
import os
import sqlite3
from dataclasses import dataclass
from pathlib import Path

from ctxscope.core.errors import BadInputError, CtxscopeError, RunFileError
from ctxscope.core.results import RunHeader, RunResult, Point
from ctxscope.core.serialize import header_to_dict, point_from_dict, point_to_dict, run_from_dict

_SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
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
    attention_json TEXT
);
CREATE TABLE IF NOT EXISTS points (
    run_id TEXT NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
    seq INTEGER NOT NULL,
    mode TEXT NOT NULL,
    length INTEGER NOT NULL,
    status TEXT NOT NULL,
    point_json TEXT NOT NULL,
    PRIMARY KEY (run_id, seq)
);
"""
USER_VERSION = 1


@dataclass(frozen=True, slots=True)
class RunSummary:
    """One line of ``ctxscope runs list``."""

    id: str
    created: str
    status: str
    model_source: str
    architecture: str
    device: str
    dtype: str
    attn: str
    batch_size: int
    points_ok: int
    points_total: int


def _pid_alive(pid: int | None) -> bool:
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class RunStore:
    """The run database. Use as a context manager, or call :meth:`close`."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self.conn = sqlite3.connect(self.path, timeout=10.0, isolation_level=None)
            self.conn.execute("PRAGMA journal_mode=WAL")
            # FULL: each committed point is on disk before the next one is measured.
            self.conn.execute("PRAGMA synchronous=FULL")
            self.conn.execute("PRAGMA foreign_keys=ON")
            version = self.conn.execute("PRAGMA user_version").fetchone()[0]
            if version > USER_VERSION:
                raise CtxscopeError(f"{self.path}: run database from a newer ctxscope (version {version})")
            self.conn.executescript(_SCHEMA)
            self.conn.execute(f"PRAGMA user_version={USER_VERSION}")
        except sqlite3.DatabaseError as exc:
            raise CtxscopeError(f"{self.path}: not a usable run database ({exc})") from None

    def __enter__(self) -> RunStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self.conn.close()

    # -- writing ------------------------------------------------------------------
    def create_run(self, header: RunHeader) -> None:
        s = header.settings
        with self.conn:
            self.conn.execute(
                "INSERT INTO runs (id, created, status, pid, model_source, architecture, device, dtype, attn, batch_size,"
                " header_json) VALUES (?, ?, 'running', ?, ?, ?, ?, ?, ?, ?, ?)",
                (header.id, header.created, os.getpid(), header.model.source, header.model.architecture, s.device,
                 s.dtype, s.attn_implementation, s.batch_size, json.dumps(header_to_dict(header))))

    def add_point(self, run_id: str, seq: int, point: Point) -> None:
        with self.conn:
            self.conn.execute("INSERT OR REPLACE INTO points VALUES (?, ?, ?, ?, ?, ?)",
                              (run_id, seq, point.mode, point.length, point.status, json.dumps(point_to_dict(point))))

    def add_attention(self, run_id: str, entries: list[dict]) -> None:
        """Append a length's attention entries (statistics; maps live in the .npz)."""
        with self.conn:
            row = self.conn.execute("SELECT attention_json FROM runs WHERE id = ?", (run_id,)).fetchone()
            current = json.loads(row[0]) if row and row[0] else []
            self.conn.execute("UPDATE runs SET attention_json = ? WHERE id = ?",
                              (json.dumps(current + entries, allow_nan=False), run_id))

    def finish_run(self, run_id: str, status: str, finished: str | None) -> None:
        with self.conn:
            self.conn.execute("UPDATE runs SET status = ?, finished = ? WHERE id = ?", (status, finished, run_id))

    def save_run(self, run: RunResult) -> None:
        """Store a finished run in one go (e.g. one opened from a file)."""
        self.create_run(run.header)
        for seq, point in enumerate(run.points):
            self.add_point(run.id, seq, point)
        if run.attention:
            self.add_attention(run.id, list(run.attention))
        self.finish_run(run.id, run.status, run.finished)

    def delete_run(self, run_id: str) -> None:
        """Delete a run, its points and its attention maps."""
        from ctxscope.store.attention_files import store_path

        full = self.resolve(run_id)
        with self.conn:
            self.conn.execute("DELETE FROM runs WHERE id = ?", (full,))
        store_path(full, self.path.parent).unlink(missing_ok=True)

    # -- reading ------------------------------------------------------------------
    def _status(self, status: str, pid: int | None) -> str:
        # A run still marked running whose process is gone was killed: it failed.
        return "failed" if status == "running" and not _pid_alive(pid) else status

    def resolve(self, prefix: str) -> str:
        """Full id from an id or a unique prefix of one."""
        prefix = prefix.strip()
        if not prefix:
            raise BadInputError("empty run id")
        rows = self.conn.execute("SELECT id FROM runs WHERE id = ? OR substr(id, 1, ?) = ? ORDER BY id",
                                 (prefix, len(prefix), prefix)).fetchall()
        ids = sorted({r[0] for r in rows})
        if prefix in ids:
            return prefix
        if not ids:
            raise BadInputError(f"no run with id {prefix!r} (see: ctxscope runs list)")
        if len(ids) > 1:
            raise BadInputError(f"run id {prefix!r} is ambiguous: {', '.join(ids[:5])}")
        return ids[0]

    def list_runs(self) -> list[RunSummary]:
        rows = self.conn.execute(
            "SELECT r.id, r.created, r.status, r.pid, r.model_source, r.architecture, r.device, r.dtype, r.attn,"
            " r.batch_size, COALESCE(SUM(p.status = 'ok'), 0), COUNT(p.seq)"
            " FROM runs r LEFT JOIN points p ON p.run_id = r.id GROUP BY r.id ORDER BY r.created, r.id").fetchall()
        return [RunSummary(id=r[0], created=r[1], status=self._status(r[2], r[3]), model_source=r[4], architecture=r[5],
                           device=r[6], dtype=r[7], attn=r[8], batch_size=r[9], points_ok=int(r[10]),
                           points_total=int(r[11])) for r in rows]

    def get_run(self, run_id: str) -> RunResult:
        full = self.resolve(run_id)
        status, finished, pid, header_json, attention_json = self.conn.execute(
            "SELECT status, finished, pid, header_json, attention_json FROM runs WHERE id = ?", (full,)).fetchone()
        data = json.loads(header_json)
        data.update(status=self._status(status, pid), finished=finished,
                    attention=json.loads(attention_json) if attention_json else [])
        rows = self.conn.execute("SELECT point_json FROM points WHERE run_id = ? ORDER BY seq", (full,)).fetchall()
        try:
            data["points"] = []
            run = run_from_dict(data)
            points = tuple(point_from_dict(json.loads(r[0]), f"points[{i}]") for i, r in enumerate(rows))
        except RunFileError as exc:
            raise CtxscopeError(f"run {full} is damaged in the database: {exc}") from None
        return RunResult(header=run.header, status=run.status, points=points, finished=run.finished,
                         attention=run.attention)

    def integrity_ok(self) -> bool:
        return self.conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
