"""Where one run of ``ctxscope sweep`` goes as its events arrive: the history (through
the recorder shared with the app), the live display, and ``--out`` at the end. A run
that cannot be kept where asked is kept elsewhere and said in one line."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ctxscope.cli.common import keep_run_file, not_stored_line, open_history_for_sweep
from ctxscope.cli.display import SweepDisplay
from ctxscope.core.events import AttentionResult, PointFailed, PointResult, Progress, SweepStarted
from ctxscope.core.results import RunResult
from ctxscope.store.recorder import RunRecorder


class RunSink:
    """One run: opened on its :class:`SweepStarted`, fed every event, closed with the
    :class:`RunResult` (:meth:`finish`) or after a failure (:meth:`fail`).

    ``out_json``: the run's file (a single sweep); ``out_dir``: a folder for
    ``<id>.json`` (a matrix). ``problems`` collects one line per thing not kept where
    asked (history, files)."""

    def __init__(self, *, quiet: bool, no_store: bool, out_json: Path | None, out_dir: Path | None,
                 problems: list[str]) -> None:
        self.display = SweepDisplay(quiet=quiet)
        self.store, history, problem = open_history_for_sweep(no_store)
        maps_dir = out_dir if out_dir is not None else out_json.parent if out_json is not None else None
        self.recorder = RunRecorder(self.store, maps_dir=maps_dir, history=history, problem=problem)
        self.out_json, self.out_dir, self.problems = out_json, out_dir, problems
        self._open = False

    def record(self, event: Any) -> None:
        self.recorder.record(event)  # the history first: a crash now loses nothing recorded
        if isinstance(event, SweepStarted):
            self.display.__enter__()
            self._open = True
            self.display.started(event.header)
        elif isinstance(event, AttentionResult):
            self.display.attention(event)
        elif isinstance(event, Progress):
            self.display.progress(event)
        elif isinstance(event, (PointResult, PointFailed)):
            self.display.point(event.point)

    def _target(self, run_id: str) -> Path | None:
        if self.out_json is not None:
            return self.out_json
        return self.out_dir / f"{run_id}.json" if self.out_dir is not None else None

    def _close(self) -> None:
        if self._open:
            self.display.__exit__(None, None, None)
            self._open = False
        if self.store is not None:
            self.store.close()
            self.store = None

    def finish(self, result: RunResult) -> None:
        """The run is over: its status to the history, its file, the summary table."""
        try:
            self.recorder.finish(result)
        finally:
            self._close()
        target = self._target(result.id)
        written = target if target is not None and keep_run_file(result, target, self.problems) else None
        # The summary comes whatever failed: it names the run id and where the run is.
        self.display.summary(result, stored=self.recorder.stored, out_json=written)
        self.problems += self.recorder.problems
        if self.recorder.history is not None and not self.recorder.stored:
            self.problems.append(not_stored_line(result, self.recorder, written))

    def fail(self) -> None:
        """After an unexpected error or a second Ctrl-C: mark the run failed and keep
        what was measured in its file too (the error itself says the rest)."""
        try:
            partial = self.recorder.fail()
            target = self._target(partial.id) if partial is not None else None
            if partial is not None and target is not None:
                keep_run_file(partial, target, [])
        finally:
            self._close()
