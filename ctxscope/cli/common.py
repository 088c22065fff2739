"""Helpers shared by the CLI commands."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

from ctxscope.core.errors import BadInputError


def output_path(value: str | None, what: str) -> Path | None:
    """Check an output file can be written before any work starts (``-`` is stdout)."""
    if value is None or value == "-":
        return None
    path = Path(value).expanduser()
    if path.is_dir():
        raise BadInputError(f"{what} {value}: is a directory; give a file name")
    parent = path.parent if str(path.parent) else Path(".")
    if not parent.is_dir():
        raise BadInputError(f"{what} {value}: directory {parent} does not exist")
    if not os.access(parent, os.W_OK):
        raise BadInputError(f"{what} {value}: directory {parent} is not writable")
    return path


def open_store(*, write: bool = False) -> Any:  # -> RunStore; sqlite stays out of --help's import path
    """The run history, read-only unless ``write``: listing and reading work in a
    read-only or full data directory. Its notices (a damaged history moved aside, runs
    recovered) go to stderr, one line each."""
    from ctxscope.core.paths import database_path
    from ctxscope.store.history import open_history

    store = open_history(database_path(), readonly=not write)
    for notice in store.notices:
        print(f"ctxscope: note: {notice}", file=sys.stderr)
    return store


def quiet_transformers(*, verbose: bool) -> None:
    """transformers' own warnings and loading bars would bury our one-line errors and
    the progress display; ``CTXSCOPE_DEBUG=1`` keeps them."""
    if os.environ.get("CTXSCOPE_DEBUG"):
        return
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()  # type: ignore[no-untyped-call]  # transformers' own, unannotated
    if not verbose:
        hf_logging.disable_progress_bar()  # type: ignore[no-untyped-call]
