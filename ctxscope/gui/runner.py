"""The one adapter between the headless core and Qt. Every background task — device
listing, loading, a sweep, a kernel × dtype matrix, the max-context search — is a plain
generator run by a superqt generator worker: what it yields arrives in the UI thread
and is re-emitted as a typed signal. The loaded model (torch objects) stays in the
:class:`~ctxscope.core.matrix.ModelSlot`, touched only by the one job running."""

from __future__ import annotations

import gc
import threading
from collections.abc import Generator
from dataclasses import dataclass, replace
from typing import Any

from PySide6.QtCore import QObject, QThreadPool, Signal
from superqt.utils import GeneratorWorker, create_worker

from ctxscope.core.errors import CtxscopeError
from ctxscope.core.matrix import LoadedSummary, ModelSlot
from ctxscope.core.spec import ModelSpec, SweepConfig

__all__ = ["DeviceChoice", "LoadedSummary", "SweepRunner"]


@dataclass(frozen=True, slots=True)
class DeviceChoice:
    id: str
    label: str
    total_bytes: int | None = None
    free_bytes: int | None = None
    uuid: str | None = None  # a GPU's identity for NVML telemetry


def _without_gc(load: Any) -> Any:
    """Run ``load`` with the collector off, then freeze the heap. Importing torch and
    building a model create ~400k objects; collections meanwhile each hold the GIL for
    up to ~250 ms (the UI freezes), and frozen objects are never traversed again."""
    gc.disable()
    try:
        return load()
    finally:
        gc.freeze()  # before enabling: else the first collection traverses them all
        gc.enable()


def _loads_without_gc(messages: Generator[tuple[str, Any], None, None]) -> Generator[tuple[str, Any], None, None]:
    """A sweep's messages, with the collector off while its model loads and its run
    starts (the analytic model builds the architecture once more, on the meta device),
    the heap frozen once the run has started. In the sweep job a full collection during
    the load held the GIL for ~150 ms: the app's longest stall (the Load button's job
    and the device listing already ran under :func:`_without_gc`)."""
    gc.disable()
    try:
        for kind, payload in messages:
            if kind == "modelLoading":
                gc.disable()  # the next cell's model (a matrix)
            elif kind == "sweepStarted":
                gc.freeze()
                gc.enable()
            yield kind, payload
    finally:
        gc.enable()


class SweepRunner(QObject):
    """Owns the worker and the loaded model. One job at a time; cancel reaches the
    core's stop event (the run ends ``cancelled`` after the current model call)."""

    busyChanged = Signal(bool)
    devicesFound = Signal(object)  # list[DeviceChoice]
    modelLoading = Signal(str)
    modelLoaded = Signal(object)  # LoadedSummary
    modelNote = Signal(str)  # what to know about the loaded model here (a dtype this CPU emulates)
    sweepStarted = Signal(object)  # RunHeader
    progressChanged = Signal(object)  # core Progress
    pointReady = Signal(object)  # Point (ok)
    pointFailed = Signal(object)  # Point (oom / error / skipped)
    attentionReady = Signal(object)  # core AttentionResult (CPU numpy maps)
    qualityReady = Signal(object)  # core QualityPoint (a loss point or a needle trial)
    sweepFinished = Signal(object)  # RunResult
    matrixFinished = Signal(object)  # tuple of run ids, in measurement order
    trialDone = Signal(object)  # core maxctx Trial
    maxContextFound = Signal(object)  # core MaxContext
    confirmRequested = Signal(object)  # core MemoryCheck: ask the user, then call answer_confirm()
    jobFailed = Signal(str)  # one line, for the user
    remoteNote = Signal(str)  # where a remote or cluster job runs, for the status bar

    def __init__(self, parent: QObject | None = None, *, store: bool = True) -> None:
        super().__init__(parent)
        self.store = store
        self.slot = ModelSlot()
        self._worker: GeneratorWorker | None = None
        self._stop = threading.Event()
        # The memory guard's question to the user: the worker waits on the event.
        self._answered = threading.Event()
        self._answer = False
        self._standing_answer: bool | None = None  # "yes/no to all" for the rest of the job
        self.remote: Any = None  # a RemoteTarget: jobs run over SSH there (the model panel's Run on)

    # -- public API (UI thread) ------------------------------------------------------
    @property
    def busy(self) -> bool:
        return self._worker is not None

    @property
    def stop_event(self) -> threading.Event:
        """The running job's stop event (set by :meth:`cancel`)."""
        return self._stop

    def list_devices(self) -> bool:
        """Import torch/transformers once, early, off the UI thread; list devices."""
        return self._start(self._devices_job())

    def load(self, spec: ModelSpec) -> bool:
        if self.remote is not None:
            from ctxscope.gui.remote_jobs import load_on_host

            return self._start(load_on_host(self, self.remote, spec))
        return self._start(self._load_job(spec))

    def set_remote(self, target: Any) -> None:
        """Run the next jobs on ``target`` (a :class:`~ctxscope.remote.ssh.RemoteTarget`),
        or here (``None``)."""
        self.remote = target

    def run(self, spec: ModelSpec, cfg: SweepConfig) -> bool:
        """Sweep ``spec`` (loading it first unless already loaded); False when busy."""
        return self._start(self._matrix_job([spec], cfg, matrix=False))

    def run_matrix(self, spec: ModelSpec, cfg: SweepConfig, dtypes: tuple[str, ...],
                   attns: tuple[str | None, ...], cluster: str | None = None,
                   ropes: tuple[str | None, ...] = (None,)) -> bool:
        """Sweep ``spec`` with every dtype × attention kernel × RoPE scaling: the model is
        loaded once per dtype and scaling and its kernel switched in place (``cluster``:
        each combination a Ray task on that cluster, in parallel); ends with ``matrixFinished``."""
        specs = [replace(spec, dtype=d, attn_implementation=a, rope_scaling=r) for d in dtypes for a in attns
                 for r in ropes]
        if cluster is not None:
            from ctxscope.gui.remote_jobs import matrix_on_cluster

            return self._start(matrix_on_cluster(self, cluster, specs, cfg))
        return self._start(self._matrix_job(specs, cfg, matrix=True))

    def find_max_context(self, spec: ModelSpec, *, mode: str | None, budget: int | None, granularity: int) -> bool:
        """Search the longest context that runs (trials arrive as ``trialDone``)."""
        if self.remote is not None:
            from ctxscope.core.jobs import MaxContextRequest
            from ctxscope.gui.remote_jobs import maxctx_on_host

            request = MaxContextRequest(mode=mode, budget=budget, granularity=granularity)
            return self._start(maxctx_on_host(self, self.remote, spec, request))
        return self._start(self._maxctx_job(spec, mode, budget, granularity))

    def cancel(self) -> None:
        """Stop after the current model call; the partial run is kept."""
        self._stop.set()

    def answer_confirm(self, run: bool, *, for_all: bool = False) -> None:
        """The user's answer to ``confirmRequested``: run the point anyway or skip it
        (``for_all``: the same answer for every further such point of this job)."""
        self._answer = run
        if for_all:
            self._standing_answer = run
        self._answered.set()

    def shutdown(self, timeout_ms: int = 30_000) -> None:
        """Cancel and wait for the worker (its thread must not outlive the app)."""
        self._stop.set()
        self._answered.set()
        QThreadPool.globalInstance().waitForDone(timeout_ms)

    # -- plumbing --------------------------------------------------------------------
    def _start(self, job: Generator[tuple[str, Any], None, None]) -> bool:
        if self._worker is not None:
            job.close()
            return False
        self._stop = threading.Event()
        self._standing_answer = None
        worker = create_worker(lambda: (yield from job), _start_thread=False, _ignore_errors=True)
        worker.yielded.connect(self._on_worker_yielded)
        worker.errored.connect(self._on_worker_errored)
        worker.finished.connect(self._on_worker_finished)
        self._worker = worker
        self.busyChanged.emit(True)
        worker.start()
        return True

    def _on_worker_yielded(self, message: tuple[str, Any]) -> None:
        kind, payload = message
        getattr(self, kind).emit(payload)

    def _on_worker_errored(self, exc: Exception) -> None:
        # Bad input and load failures are one line already; anything else is a bug,
        # shown in one line too (the app stays usable).
        self.jobFailed.emit(str(exc) if isinstance(exc, CtxscopeError) else f"{type(exc).__name__}: {exc}")

    def _on_worker_finished(self) -> None:
        self._worker = None
        self.busyChanged.emit(False)

    # -- jobs (generators; they run in the worker's thread) ---------------------------
    def _devices_job(self) -> Generator[tuple[str, Any], None, None]:
        from ctxscope.gui.devices import list_devices

        yield "devicesFound", _without_gc(list_devices)

    def _load_job(self, spec: ModelSpec) -> Generator[tuple[str, Any], None, None]:
        from ctxscope.core.matrix import summarize

        yield "modelLoading", spec.source
        gc.unfreeze()  # let an old model caught in a reference cycle be collected
        loaded = _without_gc(lambda: self.slot.acquire(spec))
        summary = summarize(loaded, spec)
        yield "modelLoaded", summary
        from ctxscope.core.devices import emulated_dtype_note

        note = emulated_dtype_note(summary.device, summary.dtype)
        if note:
            yield "modelNote", note

    def _matrix_job(self, specs: list[ModelSpec], cfg: SweepConfig,
                    matrix: bool) -> Generator[tuple[str, Any], None, None]:
        if self.remote is not None:
            from ctxscope.gui.remote_jobs import matrix_on_host

            yield from matrix_on_host(self, self.remote, specs, cfg, matrix)
            return
        from ctxscope.gui.sweep_events import matrix_messages

        yield from _loads_without_gc(matrix_messages(self, specs, cfg, matrix=matrix))

    def _maxctx_job(self, spec: ModelSpec, mode: str | None, budget: int | None,
                    granularity: int) -> Generator[tuple[str, Any], None, None]:
        from ctxscope.core.maxctx_run import find_max_context

        if self.slot.loaded is None or self.slot.spec != spec:
            yield from self._load_job(spec)
        assert self.slot.loaded is not None
        gen = find_max_context(self.slot.loaded, mode=mode, budget=budget, granularity=granularity, stop=self._stop)
        while True:
            try:
                trial = next(gen)
            except StopIteration as done:
                result = done.value
                break
            yield "trialDone", trial
        yield "maxContextFound", result

    def confirm(self, check: Any) -> bool:
        """Runs in the worker: ask the UI thread and wait (cancel still works)."""
        if self._standing_answer is not None:
            return self._standing_answer
        self._answered.clear()
        self.confirmRequested.emit(check)
        while not self._answered.wait(0.1):
            if self._stop.is_set():
                return False
        return self._answer
