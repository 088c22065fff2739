"""Run history (SQLite)."""

from ctxscope.store.db import RunStore, RunSummary

__all__ = ["RunStore", "RunSummary"]
