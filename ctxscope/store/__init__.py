"""Run history (SQLite)."""

from ctxscope.store.db import RunStore
from ctxscope.store.summary import RunSummary

__all__ = ["RunStore", "RunSummary"]
