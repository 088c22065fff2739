"""A sweep or matrix as the app runs it: the core's matrix generator, each run
recorded to the history in the worker thread (the same recorder as the CLI's), its
events turned into the runner's signal names for the UI thread."""

from __future__ import annotations

from collections.abc import Generator
from typing import Any

from ctxscope.core.events import AttentionResult, PointFailed, PointResult, Progress, SweepStarted
from ctxscope.core.matrix import CellFailed, CellFinished, ModelLoading, ModelReady, run_matrix
from ctxscope.core.quality.records import QualityPoint
from ctxscope.core.spec import ModelSpec, SweepConfig

# Not the sweep's telemetry samples: they are recorded (in this thread) with their point,
# and the strip polls its own. Sent on, they crossed to the UI thread in bursts of
# hundreds after every point (10 Hz over a point's seconds), each a queued call there.
_SIGNALS: dict[type, str] = {Progress: "progressChanged", PointResult: "pointReady", PointFailed: "pointFailed",
                             AttentionResult: "attentionReady", QualityPoint: "qualityReady"}


def _open_recorder(store_enabled: bool) -> Any:
    from ctxscope.core.paths import database_path
    from ctxscope.store import RunStore
    from ctxscope.store.errors import HistoryError
    from ctxscope.store.recorder import RunRecorder

    if not store_enabled:
        return RunRecorder(None)
    try:
        return RunRecorder(RunStore(database_path()))  # this thread's own connection
    except HistoryError as exc:  # keep measuring: the recorder keeps the run in a recovery file
        return RunRecorder(None, history=database_path(), problem=str(exc))


def matrix_messages(runner: Any, specs: list[ModelSpec], cfg: SweepConfig, matrix: bool,
                    events: Generator[Any, None, Any] | None = None) -> Generator[tuple[str, Any], None, None]:
    """(signal name, payload) for everything the UI shows; ``matrix`` ends with
    ``matrixFinished`` and goes on past a cell that cannot run (a single sweep stops
    there with one line, as ``ctxscope sweep`` does). ``events``: the matrix's events
    from elsewhere (a remote host, a cluster) instead of running it here."""
    recorder: Any = None
    done: list[str] = []
    gen = events if events is not None else run_matrix(specs, cfg, slot=runner.slot, stop=runner.stop_event,
                                                       confirm=runner.confirm, strict=not matrix)
    try:
        for event in gen:
            if isinstance(event, ModelLoading):
                yield "modelLoading", event.spec.source
            elif isinstance(event, ModelReady):
                yield "modelLoaded", event.summary
                if events is None:  # loaded here (a remote host's CPU is not this one)
                    from ctxscope.core.devices import emulated_dtype_note

                    note = emulated_dtype_note(event.summary.device, event.summary.dtype)
                    if note:
                        yield "modelNote", note
            elif isinstance(event, SweepStarted):
                recorder = _open_recorder(runner.store)
                recorder.record(event)  # history and maps first (this thread), then the UI
                yield "sweepStarted", event.header
            elif isinstance(event, CellFinished):
                if recorder is not None:
                    recorder.finish(event.result)
                    _close(recorder)
                    if recorder.history is not None and not recorder.stored:  # measured, but not in the history
                        where = (f"every point is kept in {recorder.kept_in}, added to the history the next time "
                                 "it opens" if recorder.kept_in is not None else "its points are shown here only")
                        yield "jobFailed", f"{recorder.problem or 'the run history could not be written'}; " \
                                           f"run {event.result.id} is not in the history: {where}"
                    recorder = None
                done.append(event.result.id)
                yield "sweepFinished", event.result
            elif isinstance(event, CellFailed):
                yield "jobFailed", f"{event.spec.source} ({event.spec.dtype}): {event.message}; going on with the next"
            else:
                if recorder is not None:
                    recorder.record(event)
                kind = _SIGNALS.get(type(event))
                if kind is not None:
                    yield kind, event.point if isinstance(event, (PointResult, PointFailed)) else event
    except BaseException:
        if recorder is not None:
            recorder.fail()
            _close(recorder)
        raise
    if matrix:
        yield "matrixFinished", tuple(done)


def _close(recorder: Any) -> None:
    if recorder.store is not None:
        recorder.store.close()
