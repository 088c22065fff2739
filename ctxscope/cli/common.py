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
    from ctxscope.store import RunStore

    store = RunStore(database_path(), readonly=not write)
    for notice in store.notices:
        print(f"ctxscope: note: {notice}", file=sys.stderr)
    return store


def open_history_for_sweep(no_store: bool) -> tuple[Any, Path | None, str | None]:
    """``(store, history path, problem)`` for a sweep: a history that cannot be opened
    (locked through the busy timeout, read-only, full, damaged beyond moving aside) is
    not a reason to stop measuring, so its error comes back as ``problem`` instead."""
    if no_store:
        return None, None, None
    from ctxscope.core.paths import database_path
    from ctxscope.store.errors import HistoryError

    path = database_path()
    try:
        return open_store(write=True), path, None
    except HistoryError as exc:
        return None, path, str(exc)


def keep_run_file(run: Any, path: Path, problems: list[str]) -> bool:
    """Write ``run`` to ``path`` (``--out``); on failure remove the partial file, add one
    line to ``problems`` and return False: a full disk must not cost the other outputs."""
    from ctxscope.core.serialize import write_run
    from ctxscope.store.errors import file_problem

    try:
        write_run(run, path)
        return True
    except OSError as exc:
        try:
            path.with_name(path.name + ".part").unlink(missing_ok=True)
        except OSError:
            pass
        problems.append(f"--out {file_problem(exc, path)}")
        return False


def not_stored_line(run: Any, recorder: Any, written: Path | None) -> str:
    """One line for a run the history did not take: why, and where every point is
    instead (the recovery file, the ``--out`` file, a file in the temp folder, or, when
    no file can be written anywhere, the run's JSON on stdout)."""
    import tempfile

    why = recorder.problem or "the run history could not be written"
    n = len(run.points)
    if recorder.kept_in is not None:
        where = f"all {n} points are in {recorder.kept_in}, added to the history the next time ctxscope opens it"
    elif written is not None:
        where = f"all {n} points are in {written} (later: ctxscope runs import {written})"
    else:
        fallback = Path(tempfile.gettempdir()) / f"ctxscope-run-{run.id}.json"
        if keep_run_file(run, fallback, []):
            where = f"all {n} points are in {fallback} (later: ctxscope runs import {fallback})"
        else:
            from ctxscope.core.serialize import dumps_run

            sys.stdout.write(dumps_run(run) + "\n")
            where = f"no file could be written, so the run's JSON ({n} points) is on stdout above"
    return f"{why}; run {run.id} is not in the history: {where}"


def quiet_transformers(*, verbose: bool) -> None:
    """transformers' own warnings and loading bars would bury our one-line errors and
    the progress display; ``CTXSCOPE_DEBUG=1`` keeps them."""
    if os.environ.get("CTXSCOPE_DEBUG"):
        return
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()  # type: ignore[no-untyped-call]  # transformers' own, unannotated
    if not verbose:
        hf_logging.disable_progress_bar()  # type: ignore[no-untyped-call]
