"""Run ids name files (attention maps, recovery files): one rule for every id, whether
it comes from a run file, the database or the command line."""

from __future__ import annotations

from ctxscope.core.errors import CtxscopeError
from ctxscope.core.serialize import _RUN_ID  # the run file's own rule, so the two never drift apart


def valid_run_id(run_id: object) -> bool:
    """Letters, digits, '-', '_' or '.', at most 64, not starting with '.': never a path."""
    return isinstance(run_id, str) and _RUN_ID.fullmatch(run_id) is not None


def check_run_id(run_id: object) -> str:
    """``run_id`` if it is valid, else a one-line error."""
    if not valid_run_id(run_id):
        raise CtxscopeError(f"run id {run_id!r} is not valid: expected letters, digits, '-', '_' or '.' "
                            "(at most 64, not starting with '.')")
    return str(run_id)
