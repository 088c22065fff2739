"""The one adapter between the headless core and Qt. Every background task — device
listing, loading, a sweep, a kernel × dtype matrix, the max-context search — is a job
started through a :class:`~ctxscope.core.jobs.launch.Launcher` (this machine, a host over
SSH, a Ray cluster) and run by a superqt generator worker: its core events arrive in
the UI thread unchanged and are matched on their types once, to the typed signals
below. Runs are recorded in the worker thread (:func:`ctxscope.store.recorded.recorded`).
The loaded model (torch objects) stays in the :class:`~ctxscope.core.jobs.matrix.ModelSlot`,
touched only by the one job running."""

from __future__ import annotations

import gc
import threading
from collections.abc import Callable, Generator
from dataclasses import dataclass, replace
from typing import Union

from PySide6.QtCore import QObject, QThreadPool, Signal
from superqt.utils import GeneratorWorker, create_worker

from ctxscope.core.machine.device_choices import DeviceChoice
from ctxscope.core.errors import CtxscopeError
from ctxscope.core.events import (AttentionResult, CellFailed, CellFinished, JobEvent, JobResult, LoadedSummary,
                                  ModelLoading, ModelReady, PointFailed, PointResult, Progress, SweepStarted)
from ctxscope.core.predict.guard import MemoryCheck
from ctxscope.core.jobs.job import Job, MaxContextRequest
from ctxscope.core.jobs.launch import Launcher, Local
from ctxscope.core.jobs.matrix import ModelSlot
from ctxscope.core.maxctx.search import MaxContext, Trial
from ctxscope.core.quality.records import QualityPoint
from ctxscope.core.spec import ModelSpec, SweepConfig
from ctxscope.gui.pacing import ViewPacer
from ctxscope.core.machine.telemetry import TelemetrySample
from ctxscope.remote.ssh import RemoteTarget
from ctxscope.store.recorded import RunKept

__all__ = ["DeviceChoice", "LoadedSummary", "SweepRunner"]


@dataclass(frozen=True, slots=True)
class DevicesFound:
    devices: list[DeviceChoice]


@dataclass(frozen=True, slots=True)
class JobDone:
    """A job's result, after its last event (``matrix``: the app asked for a matrix)."""

    job: Job
    result: JobResult
    matrix: bool


Message = Union[JobEvent, RunKept, DevicesFound, JobDone]


def _without_gc(load: Callable[[], list[DeviceChoice]]) -> list[DeviceChoice]:
    """Run ``load`` with the collector off, then freeze the heap. Importing torch and
    building a model create ~400k objects; collections meanwhile each hold the GIL for
    up to ~250 ms (the UI freezes), and frozen objects are never traversed again."""
    gc.disable()
    try:
        return load()
    finally:
        gc.freeze()  # before enabling: else the first collection traverses them all
        gc.enable()


class _Raised(Exception):
    """A ``RuntimeError`` out of a job (torch raises many), carried as another type:
    superqt's generator worker returns a ``RuntimeError`` as if its worker had been
    deleted — no ``errored``, no ``finished`` — and the app stayed busy for good."""


def _reraised(work: Generator[Message, None, object]) -> Generator[Message, None, object]:
    try:
        return (yield from work)
    except RuntimeError as exc:
        raise _Raised(f"{type(exc).__name__}: {exc}") from exc


class _PausedCollector:
    """The collector off while a job's model loads and its run starts (the analytic
    model builds the architecture once more, on the meta device), the heap frozen once
    the run has started (a matrix: once more per model). In the sweep job a full
    collection during the load held the GIL for ~150 ms: the app's longest stall."""

    def __init__(self, job: Job) -> None:
        self.job = job
        gc.disable()

    def __call__(self, event: JobEvent) -> bool:
        if isinstance(event, ModelLoading):
            gc.unfreeze()  # let an old model caught in a reference cycle be collected …
            gc.disable()  # … later: not while this one loads
        elif isinstance(event, SweepStarted) or (isinstance(event, ModelReady) and self.job.kind != "matrix"):
            gc.freeze()  # before enabling: else the first collection traverses them all
            gc.enable()
        # A sweep's telemetry samples are recorded (in this thread) with their point and
        # the strip polls its own: sent on, they crossed to the UI thread in bursts of
        # hundreds after every point, each a queued call there.
        return not isinstance(event, TelemetrySample)

    @staticmethod
    def end() -> None:
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
        self.remote: RemoteTarget | None = None  # jobs run over SSH there (the model panel's Run on)
        self._here = True  # the running job runs in this process
        # The measuring thread waits for the views between points (see gui/pacing.py);
        # the window says whether its views have updates queued.
        self.pacer = ViewPacer()
        self.views_busy: Callable[[], bool] = lambda: False

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
        return self._start(None, None)

    def load(self, spec: ModelSpec) -> bool:
        """Load ``spec`` and describe it (over SSH: load it there, nothing stays loaded)."""
        return self._start(self._launcher(), Job("load", (spec,)))

    def set_remote(self, target: RemoteTarget | None) -> None:
        """Run the next jobs on ``target`` (a :class:`~ctxscope.remote.ssh.RemoteTarget`),
        or here (``None``)."""
        self.remote = target

    def run(self, spec: ModelSpec, cfg: SweepConfig) -> bool:
        """Sweep ``spec`` (loading it first unless already loaded); False when busy. A
        KV-cache strategy the model cannot use ends the job with the CLI's one-line reason
        before any weights load (here; over SSH the remote says it once it has loaded)."""
        return self._start(self._launcher(), Job("matrix", (spec,), cfg, strict=True, ask=True))

    def run_matrix(self, spec: ModelSpec, cfg: SweepConfig, dtypes: tuple[str, ...],
                   attns: tuple[str | None, ...], cluster: str | None = None,
                   ropes: tuple[str | None, ...] = (None,), caches: tuple[str, ...] = ()) -> bool:
        """Sweep ``spec`` with every dtype × attention kernel × RoPE scaling × KV-cache
        strategy (``caches``; none: ``cfg.cache``): the model is loaded once per dtype and
        scaling, its kernel switched in place and the strategies run on the same copy
        (``cluster``: each combination a Ray task on that cluster, in parallel); ends with
        ``matrixFinished``."""
        strategies = caches or (cfg.cache,)
        cells = [(replace(spec, dtype=d, attn_implementation=a, rope_scaling=r), c) for d in dtypes for a in attns
                 for r in ropes for c in strategies]
        specs = tuple(s for s, _ in cells)
        axis = tuple(c for _, c in cells) if len(strategies) > 1 or strategies != (cfg.cache,) else ()
        if cluster is None:  # the memory guard asks the user (here or over SSH)
            return self._start(self._launcher(), Job("matrix", specs, cfg, strict=False, ask=True, caches=axis),
                               matrix=True)
        from ctxscope.remote.launch import Ray

        self.remoteNote.emit(f"Joining the Ray cluster ({cluster}) …")
        return self._start(Ray(cluster, say=self.remoteNote.emit), Job("matrix", specs, cfg, strict=False, caches=axis),
                           matrix=True)

    def find_max_context(self, spec: ModelSpec, *, mode: str | None, budget: int | None, granularity: int) -> bool:
        """Search the longest context that runs (trials arrive as ``trialDone``)."""
        request = MaxContextRequest(mode=mode, budget=budget, granularity=granularity)
        return self._start(self._launcher(), Job("maxctx", (spec,), maxctx=request))

    def cancel(self) -> None:
        """Stop after the current model call; the partial run is kept."""
        self._stop.set()
        self.pacer.wake()

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
        self.pacer.wake()
        QThreadPool.globalInstance().waitForDone(timeout_ms)

    # -- plumbing --------------------------------------------------------------------
    def _launcher(self) -> Launcher:
        if self.remote is None:
            return Local(self.slot)
        from ctxscope.remote.launch import Ssh

        host = self.remote.host
        return Ssh(self.remote, name_host=True,
                   on_hello=lambda hello: self.remoteNote.emit(f"Running on {host}: {hello.describe()}"))

    def _start(self, launcher: Launcher | None, job: Job | None, *, matrix: bool = False) -> bool:
        if self._worker is not None:
            return False
        self._stop = threading.Event()
        self._standing_answer = None
        self._here = isinstance(launcher, Local)
        self.pacer.reset()
        work = self.messages(launcher, job, matrix=matrix) if launcher is not None and job is not None \
            else self._devices()
        worker = create_worker(lambda: (yield from _reraised(work)), _start_thread=False, _ignore_errors=True)
        worker.yielded.connect(self._on_worker_yielded)
        worker.errored.connect(self._on_worker_errored)
        worker.finished.connect(self._on_worker_finished)
        self._worker = worker
        self.busyChanged.emit(True)
        worker.start()
        return True

    def messages(self, launcher: Launcher, job: Job, *, matrix: bool = False) -> Generator[Message, None, None]:
        """What the worker sends the UI thread for ``job`` run by ``launcher``: the job's
        events (a sweep's recorded to the history first, here in the worker), then its
        result as :class:`JobDone`."""
        from ctxscope.core.jobs.launch import through
        from ctxscope.store.recorded import open_recorder, recorded

        collector = _PausedCollector(job)
        try:
            if isinstance(launcher, Local) and job.kind == "matrix" and job.config is not None:
                # Every cell's strategy, from the config alone, in this worker (a demo's first
                # config read converts its weights: not in the UI thread): a sweep or a
                # matrix with one refused cell stops before its first, as `ctxscope sweep` does.
                from ctxscope.core.measure.kv_cache import KVOptions, check_before_loading

                cfg = job.config
                options = KVOptions(cfg.kv_group_size, cfg.kv_residual)
                seen: set[tuple[str, str, str]] = set()
                for spec, cache in zip(job.specs, job.caches or (cfg.cache,) * len(job.specs)):
                    if (spec.source, spec.device, cache) not in seen:  # a dtype/kernel axis repeats a spec
                        seen.add((spec.source, spec.device, cache))
                        check_before_loading(spec, cache, options)
            confirm = self.confirm if job.kind == "matrix" and job.ask else None
            run = launcher.run(job, stop=self._stop, confirm=confirm)
            if isinstance(launcher, Local):  # measured in this process: not while the views update
                run = self.pacer.paced(run, self._stop)
            events = through(run, collector)
            if job.kind == "matrix":
                result = yield from recorded(events, open_recorder(enabled=self.store))
            else:
                result = yield from events
        finally:
            collector.end()
        yield JobDone(job, result, matrix)

    def _devices(self) -> Generator[Message, None, None]:
        from ctxscope.core.machine.device_choices import list_devices

        yield DevicesFound(_without_gc(list_devices))

    def _on_worker_yielded(self, message: Message) -> None:
        try:
            self._dispatch(message)
        finally:  # counted even if a slot failed: else every later point would wait its timeout
            self.pacer.handled(message, views_idle=not self.views_busy())

    def _dispatch(self, message: Message) -> None:
        match message:
            case ModelLoading(spec=spec):
                self.modelLoading.emit(spec.source)
            case ModelReady(summary=summary):
                self.modelLoaded.emit(summary)
                if self._here:  # a remote host's CPU is not this one
                    from ctxscope.core.machine.devices import emulated_dtype_note

                    if note := emulated_dtype_note(summary.device, summary.dtype):
                        self.modelNote.emit(note)
            case SweepStarted(header=header):
                self.sweepStarted.emit(header)
            case Progress():
                self.progressChanged.emit(message)
            case PointResult(point=point):
                self.pointReady.emit(point)
            case PointFailed(point=point):
                self.pointFailed.emit(point)
            case AttentionResult():
                self.attentionReady.emit(message)
            case QualityPoint():
                self.qualityReady.emit(message)
            case CellFinished(result=result):
                self.sweepFinished.emit(result)
            case RunKept(problems=problems):
                for line in problems:  # measured, but not kept in the history: where it is
                    self.jobFailed.emit(line)
            case CellFailed(spec=spec, message=text):
                self.jobFailed.emit(f"{spec.source} ({spec.dtype}): {text}; going on with the next")
            case Trial():
                self.trialDone.emit(message)
            case DevicesFound(devices=devices):
                self.devicesFound.emit(devices)
            case JobDone(job=job, result=result, matrix=matrix):
                if isinstance(result, MaxContext):
                    self.maxContextFound.emit(result)
                elif job.kind == "matrix" and matrix and isinstance(result, tuple):
                    self.matrixFinished.emit(tuple(r.id for r in result))

    def _on_worker_errored(self, exc: Exception) -> None:
        # Bad input and load failures are one line already; anything else is a bug,
        # shown in one line too (the app stays usable).
        self.jobFailed.emit(str(exc) if isinstance(exc, (CtxscopeError, _Raised))
                            else f"{type(exc).__name__}: {exc}")

    def _on_worker_finished(self) -> None:
        self._worker = None
        self.busyChanged.emit(False)

    def confirm(self, check: MemoryCheck) -> bool:
        """Runs in the worker: ask the UI thread and wait (cancel still works)."""
        if self._standing_answer is not None:
            return self._standing_answer
        self._answered.clear()
        self.confirmRequested.emit(check)
        while not self._answered.wait(0.1):
            if self._stop.is_set():
                return False
        return self._answer
