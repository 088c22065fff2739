"""The run history from the app: every SQLite read and delete runs in a worker thread
(a history of thousands of runs, or one locked by another process, must not freeze the
window); results come back to the UI thread as signals."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from PySide6.QtCore import QObject, Signal
from superqt.utils import create_worker

from ctxscope.core.errors import CtxscopeError
from ctxscope.core.results import RunResult


def _read(fn: Callable[[Any], Any], *, readonly: bool = True) -> Any:
    from ctxscope.core.paths import database_path
    from ctxscope.store.history import open_history

    with open_history(database_path(), readonly=readonly) as store:
        return fn(store)


def maps_of(run: RunResult, folder: Path | None = None) -> Path:
    """Where a run's attention maps are (beside its file, or in the history's folder)."""
    from ctxscope.store.attention_files import maps_path

    return maps_path(run.id, folder)


class HistoryController(QObject):
    """List, open and delete stored runs off the UI thread."""

    listed = Signal(object, object)  # list[RunSummary], list[str] notices
    opened = Signal(object, bool)  # RunResult, overlay
    loadedForCompare = Signal(object)  # list of (RunResult, maps path)
    failed = Signal(str)  # one line, for the window's red bar
    problem = Signal(object)  # str | None: what is wrong with the history itself

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._running = 0

    @property
    def busy(self) -> bool:
        return self._running > 0

    def _run(self, fn: Callable[[], Any], done: Callable[[Any], None],
             on_error: Callable[[Exception], None] | None = None) -> None:
        handle = on_error or self._on_error

        def work() -> tuple[Callable[[Any], None], Any]:
            try:
                return done, fn()
            except Exception as exc:  # comes back as data: handled in the UI thread
                return handle, exc

        worker = create_worker(work, _start_thread=False, _ignore_errors=True)
        # Bound methods of this QObject: queued into the UI thread, in order (a lambda
        # would run in the worker's thread).
        worker.returned.connect(self._on_worker_returned)
        worker.finished.connect(self._on_worker_finished)
        self._running += 1
        worker.start()

    def _on_worker_returned(self, result: tuple[Callable[[Any], None], Any]) -> None:
        callback, value = result
        callback(value)

    def _on_worker_finished(self) -> None:
        self._running -= 1

    def _on_error(self, exc: Exception) -> None:
        self.failed.emit(str(exc) if isinstance(exc, CtxscopeError) else f"{type(exc).__name__}: {exc}")

    def refresh(self) -> None:
        """Read the list of runs (read-only: a read-only or full data folder lists too;
        a damaged history is moved aside and what reads recovered, said in notices)."""
        def work() -> tuple[list[Any], list[str]]:
            return _read(lambda store: (store.list_runs(), list(store.notices)))

        def failed(exc: Exception) -> None:
            self.problem.emit(str(exc))
            self._on_error(exc)

        self._run(work, lambda result: self.listed.emit(*result), failed)

    def open(self, run_id: str, *, overlay: bool = False) -> None:
        self._run(lambda: _read(lambda store: store.get_run(run_id)), lambda run: self.opened.emit(run, overlay))

    def load_for_compare(self, run_ids: list[str]) -> None:
        def work() -> list[tuple[RunResult, Path]]:
            runs = _read(lambda store: [store.get_run(i) for i in run_ids])
            return [(run, maps_of(run)) for run in runs]

        self._run(work, self.loadedForCompare.emit)

    def delete(self, run_id: str) -> None:
        self._run(lambda: _read(lambda store: store.delete_run(run_id), readonly=False), lambda _: self.refresh())
