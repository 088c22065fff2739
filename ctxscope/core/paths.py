"""Where ctxscope keeps its data: ``CTXSCOPE_HOME`` or the platform's user data dir."""

from __future__ import annotations

import os
from pathlib import Path

import platformdirs


def data_dir() -> Path:
    """The data directory (created on demand); ``CTXSCOPE_HOME`` overrides the default."""
    override = os.environ.get("CTXSCOPE_HOME")
    path = Path(override).expanduser() if override else Path(platformdirs.user_data_dir("ctxscope", appauthor=False))
    path.mkdir(parents=True, exist_ok=True)
    return path


def database_path() -> Path:
    """The SQLite run history."""
    return data_dir() / "runs.sqlite3"
