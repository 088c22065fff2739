"""The one adapter between the headless core and Qt: runs model loading and the sweep
generator in a worker thread and re-emits core events as typed signals."""

from __future__ import annotations

import gc
import threading
import traceback
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

from PySide6.QtCore import QObject, QThread, Signal

from ctxscope.core.errors import BadInputError, CtxscopeError
from ctxscope.core.results import ModelInfo
from ctxscope.core.spec import ModelSpec, SweepConfig


@dataclass(frozen=True, slots=True)
class LoadedSummary:
    """What the UI may know of a loaded model: plain data, no torch objects."""

    spec: ModelSpec
    info: ModelInfo
    device: str
    dtype: str
    attn_implementation: str
    weights_bytes: int
    device_total_bytes: int | None
    gpu_uuids: tuple[str, ...] = ()  # the GPUs it occupies, for telemetry


@dataclass(frozen=True, slots=True)
class DeviceChoice:
    id: str
    label: str
    total_bytes: int | None = None
    free_bytes: int | None = None
    uuid: str | None = None  # a GPU's identity for NVML telemetry


class _Job(QThread):
    """Runs one callable in its own thread; ``emitted`` crosses to the UI thread queued."""

    emitted = Signal(object)

    def __init__(self, fn: Callable[[Callable[[str, Any], None]], None], generation: int) -> None:
        super().__init__()
        self.fn = fn
        self.generation = generation

    def run(self) -> None:  # worker thread
        def emit(kind: str, payload: Any = None) -> None:
            self.emitted.emit((self.generation, kind, payload))

        try:
            self.fn(emit)
        except CtxscopeError as exc:
            emit("error", str(exc))
        except Exception as exc:  # never let a worker exception vanish or kill the app
            traceback.print_exc()
            emit("error", f"{type(exc).__name__}: {exc}")
        finally:
            emit("done", None)


# Core event type -> the runner's message kind (each becomes one typed signal).
_EVENT_KINDS = {"SweepStarted": "started", "Progress": "progress", "PointResult": "point",
                "PointFailed": "failed_point", "AttentionResult": "attention", "TelemetrySample": "telemetry"}


def _freeze_heap() -> None:
    """Move every object alive now out of the garbage collector's view. With torch,
    transformers and a model loaded (~400k objects) a full collection takes ~240 ms and
    holds the GIL, freezing the UI thread; frozen objects are never traversed again."""
    gc.freeze()


def _thaw_heap() -> None:
    """Before replacing a model: let cyclic garbage among frozen objects be collected
    (otherwise an old model caught in a cycle would keep its memory)."""
    gc.unfreeze()
    gc.collect()


class SweepRunner(QObject):
    """Owns the worker thread and the loaded model. Only one job runs at a time; the
    loaded model's torch objects never leave worker threads."""

    busyChanged = Signal(bool)
    devicesFound = Signal(object)  # list[DeviceChoice]
    modelLoading = Signal(str)
    modelLoaded = Signal(object)  # LoadedSummary
    sweepStarted = Signal(object)  # RunHeader
    progressChanged = Signal(object)  # core Progress
    pointReady = Signal(object)  # Point (ok)
    pointFailed = Signal(object)  # Point (oom / error / skipped)
    telemetrySampled = Signal(object)
    attentionReady = Signal(object)  # core AttentionResult (CPU numpy maps)
    sweepFinished = Signal(object)  # RunResult
    matrixFinished = Signal(object)  # tuple of run ids, in measurement order
    probeDone = Signal(object)  # core maxctx Probe
    maxContextFound = Signal(object)  # core MaxContext
    confirmRequested = Signal(object)  # core MemoryCheck: ask the user, then call answer_confirm()
    jobFailed = Signal(str)  # one line, for the user

    def __init__(self, parent: QObject | None = None, *, store: bool = True) -> None:
        super().__init__(parent)
        self.store = store
        self._job: _Job | None = None
        self._generation = 0
        self._stop = threading.Event()
        self._loaded: Any = None  # LoadedModel, touched only inside jobs
        self._loaded_spec: ModelSpec | None = None
        # The memory guard's question to the user: the worker waits on the event.
        self._answered = threading.Event()
        self._answer = False
        self._standing_answer: bool | None = None  # "yes/no to all" for the rest of the job

    # -- public API (UI thread) ------------------------------------------------------
    @property
    def busy(self) -> bool:
        return self._job is not None

    def probe_devices(self) -> bool:
        """Import torch/transformers once, early, off the UI thread; list devices."""
        return self._start(self._probe_job)

    def load(self, spec: ModelSpec) -> bool:
        return self._start(lambda emit: self._load_job(emit, spec))

    def run(self, spec: ModelSpec, cfg: SweepConfig) -> bool:
        """Sweep ``spec`` (loading it first unless already loaded); False when busy."""
        return self._start(lambda emit: self._run_job(emit, spec, cfg))

    def run_matrix(self, spec: ModelSpec, cfg: SweepConfig, dtypes: tuple[str, ...],
                   attns: tuple[str | None, ...]) -> bool:
        """Sweep ``spec`` with every dtype × attention kernel: the model is loaded once per
        dtype and its kernel switched in place; ends with ``matrixFinished``."""
        return self._start(lambda emit: self._matrix_job(emit, spec, cfg, dtypes, attns))

    def find_max_context(self, spec: ModelSpec, *, mode: str | None, budget: int | None, granularity: int) -> bool:
        """Search the longest context that runs (probes arrive as ``probeDone``)."""
        return self._start(lambda emit: self._maxctx_job(emit, spec, mode, budget, granularity))

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
        """Cancel and wait for the worker: a QThread destroyed while running aborts."""
        self._stop.set()
        job = self._job
        if job is not None:
            job.wait(timeout_ms)

    # -- plumbing --------------------------------------------------------------------
    def _start(self, fn: Callable[[Callable[[str, Any], None]], None]) -> bool:
        if self._job is not None:
            return False
        self._generation += 1
        self._stop = threading.Event()
        self._standing_answer = None
        job = _Job(fn, self._generation)
        job.emitted.connect(self._on_job_emitted)
        self._job = job
        self.busyChanged.emit(True)
        job.start()
        return True

    def _on_job_emitted(self, message: tuple[int, str, Any]) -> None:
        generation, kind, payload = message
        if generation != self._generation:
            return  # a stale job's late event
        if kind == "done":
            job, self._job = self._job, None
            if job is not None:
                job.wait()
                job.deleteLater()
            self.busyChanged.emit(False)
            return
        signal = {"devices": self.devicesFound, "loading": self.modelLoading, "loaded": self.modelLoaded,
                  "confirm": self.confirmRequested,
                  "started": self.sweepStarted, "progress": self.progressChanged, "point": self.pointReady,
                  "failed_point": self.pointFailed, "telemetry": self.telemetrySampled,
                  "attention": self.attentionReady,
                  "finished": self.sweepFinished, "matrix": self.matrixFinished, "probe": self.probeDone, "maxctx": self.maxContextFound,
                  "error": self.jobFailed}[kind]
        signal.emit(payload)

    # -- jobs (worker thread) --------------------------------------------------------
    @staticmethod
    def _probe_job(emit: Callable[[str, Any], None]) -> None:
        # Importing torch + transformers creates ~400k objects; the collections that
        # would trigger meanwhile each hold the GIL for up to ~250 ms, stalling the UI.
        # Imports make next to no cyclic garbage: collect nothing until they are done.
        gc.disable()
        try:
            import torch
            import transformers  # noqa: F401  (imported once here, not mid-sweep)

            import ctxscope.core.sweep  # noqa: F401
        finally:
            _freeze_heap()  # before enabling: else the first collection traverses them all
            gc.enable()

        from ctxscope.core import nvml
        from ctxscope.report.fmt import fmt_bytes

        choices = [DeviceChoice("auto", "auto (best available)")]
        for i in range(torch.cuda.device_count() if torch.cuda.is_available() else 0):
            # Free memory from NVML: torch.cuda.mem_get_info would create a CUDA context
            # (≈0.5 GiB) on every GPU, held for the app's whole life.
            props = torch.cuda.get_device_properties(i)
            uuid = nvml.torch_uuid(i)
            info = nvml.memory_info(uuid)
            free, total = info if info is not None else (None, int(props.total_memory))
            memory = f"{fmt_bytes(free)} of {fmt_bytes(total)} free" if free is not None else f"{fmt_bytes(total)}"
            choices.append(DeviceChoice(f"cuda:{i}", f"cuda:{i} — {props.name} ({memory})", total, free, uuid))
        if torch.backends.mps.is_available():
            choices.append(DeviceChoice("mps", "mps — Apple GPU"))
        choices.append(DeviceChoice("cpu", "cpu"))
        emit("devices", choices)

    def _load_job(self, emit: Callable[[str, Any], None], spec: ModelSpec) -> None:
        import torch

        from ctxscope.core import nvml
        from ctxscope.core.devices import dtype_name
        from ctxscope.core.loading import load_model
        from ctxscope.core.memory import model_devices, module_bytes, release

        emit("loading", spec.source)
        if self._loaded is not None:
            device = self._loaded.device
            self._loaded, self._loaded_spec = None, None
            _thaw_heap()
            release(device)  # the old model's blocks go back to the GPU, not to the cache
        gc.disable()  # as in the probe: building a model allocates many objects, few cycles
        try:
            loaded = load_model(spec)
        finally:
            _freeze_heap()  # before enabling: else the first collection traverses them all
            gc.enable()
        self._loaded, self._loaded_spec = loaded, spec
        total = torch.cuda.get_device_properties(loaded.device).total_memory if loaded.device.type == "cuda" else None
        uuids = tuple(u for d in model_devices(loaded.model) if (u := nvml.torch_uuid(d.index or 0)) is not None)
        emit("loaded", LoadedSummary(spec=spec, info=loaded.info, device=str(loaded.device),
                                     dtype=dtype_name(loaded.dtype), attn_implementation=loaded.attn_implementation,
                                     weights_bytes=module_bytes(loaded.model), device_total_bytes=total,
                                     gpu_uuids=uuids))

    def _run_job(self, emit: Callable[[str, Any], None], spec: ModelSpec, cfg: SweepConfig) -> None:
        if self._loaded is None or self._loaded_spec != spec:
            self._load_job(emit, spec)
        self._sweep_loaded(emit, spec, cfg)

    def _maxctx_job(self, emit: Callable[[str, Any], None], spec: ModelSpec, mode: str | None, budget: int | None,
                    granularity: int) -> None:
        from ctxscope.core.maxctx_run import find_max_context
        from ctxscope.core.sweep import drive

        if self._loaded is None or self._loaded_spec != spec:
            self._load_job(emit, spec)
        result = drive(find_max_context(self._loaded, mode=mode, budget=budget, granularity=granularity,
                                        stop=self._stop), lambda probe: emit("probe", probe))
        emit("maxctx", result)

    def _matrix_job(self, emit: Callable[[str, Any], None], spec: ModelSpec, cfg: SweepConfig,
                    dtypes: tuple[str, ...], attns: tuple[str | None, ...]) -> None:
        from ctxscope.core.errors import CtxscopeError
        from ctxscope.core.loading import switch_attention

        done: list[str] = []
        try:
            for dtype in dtypes:
                first = replace(spec, dtype=dtype, attn_implementation=attns[0])
                if self._loaded is None or self._loaded_spec != first:
                    self._load_job(emit, first)
                for attn in attns:
                    if self._stop.is_set():
                        return
                    if attn is not None:
                        try:
                            self._loaded = switch_attention(self._loaded, attn)
                        except CtxscopeError as exc:
                            emit("error", f"{spec.source} ({dtype}): {exc}; going on with the next")
                            continue
                        self._loaded_spec = replace(spec, dtype=dtype, attn_implementation=attn)
                    result = self._sweep_loaded(emit, self._loaded_spec, cfg)
                    done.append(result.id)
                    if result.status == "cancelled":
                        return
        finally:
            emit("matrix", tuple(done))

    def _sweep_loaded(self, emit: Callable[[str, Any], None], spec: ModelSpec, cfg: SweepConfig) -> Any:
        from ctxscope.core.paths import database_path
        from ctxscope.core.sweep import drive, run_sweep, supported_modes
        from ctxscope.store import RunStore
        from ctxscope.store.recorder import RunRecorder

        # The panel offers every mode until it knows the model: keep the ones it has.
        supported = supported_modes(self._loaded)
        if cfg.modes:
            modes = tuple(m for m in cfg.modes if m in supported)
            if not modes:
                raise BadInputError(f"{spec.source} supports only {', '.join(supported)}: tick one of those modes")
            cfg = replace(cfg, modes=modes)
        store = RunStore(database_path()) if self.store else None  # this thread's own connection
        recorder = RunRecorder(store)

        def on_event(event: Any) -> None:
            recorder.record(event)  # history and maps first (this thread), then the UI
            kind = _EVENT_KINDS.get(type(event).__name__)
            if kind == "started":
                emit(kind, event.header)
            elif kind in ("point", "failed_point"):
                emit(kind, event.point)
            elif kind is not None:
                emit(kind, event)

        def confirm(check: Any) -> bool:
            """Runs in the worker: ask the UI thread and wait (cancel still works)."""
            if self._standing_answer is not None:
                return self._standing_answer
            self._answered.clear()
            emit("confirm", check)
            while not self._answered.wait(0.1):
                if self._stop.is_set():
                    return False
            return self._answer

        try:
            result = drive(run_sweep(self._loaded, cfg, stop=self._stop, confirm=confirm), on_event)
            recorder.finish(result)
            emit("finished", result)
            return result
        except BaseException:
            recorder.fail()
            raise
        finally:
            if store is not None:
                store.close()
