"""Several configurations in a row on one machine — every model × dtype × attention
kernel — as one generator that the CLI and the desktop app consume alike: each model
is loaded once per dtype and its kernel switched in place, a cell that cannot load or
switch is recorded and the rest go on, and a cancelled cell ends the matrix.

A one-cell matrix is a plain sweep: front ends run single sweeps through here too, so
loading, kernel switching and releasing memory are written once.
"""

from __future__ import annotations

import gc
import threading
from collections.abc import Callable, Generator, Sequence
from dataclasses import replace
from typing import TYPE_CHECKING

from ctxscope.core.errors import CtxscopeError
# The events live with the rest of the vocabulary; imported from here too.
from ctxscope.core.events import (CellFailed, CellFinished, LoadedSummary, MatrixEvent, ModelLoading, ModelReady,
                                  SweepEvent)
from ctxscope.core.results import RunResult
from ctxscope.core.spec import ModelSpec, SweepConfig

__all__ = ["CellFailed", "CellFinished", "LoadedSummary", "MatrixEvent", "ModelLoading", "ModelReady", "ModelSlot",
           "run_matrix", "summarize"]

if TYPE_CHECKING:  # torch stays out of the desktop app's start-up path
    from ctxscope.core.predict.guard import MemoryCheck
    from ctxscope.core.model.loading import LoadedModel


def summarize(loaded: LoadedModel, spec: ModelSpec) -> LoadedSummary:
    import torch

    from ctxscope.core.machine import nvml
    from ctxscope.core.machine.devices import dtype_name
    from ctxscope.core.measure.memory import model_devices, module_bytes

    total = torch.cuda.get_device_properties(loaded.device).total_memory if loaded.device.type == "cuda" else None
    uuids = tuple(u for d in model_devices(loaded.model) if (u := nvml.torch_uuid(d.index or 0)) is not None)
    return LoadedSummary(spec=spec, info=loaded.info, device=str(loaded.device), dtype=dtype_name(loaded.dtype),
                         attn_implementation=loaded.attn_implementation, weights_bytes=module_bytes(loaded.model),
                         device_total_bytes=int(total) if total is not None else None, gpu_uuids=uuids)


def _same_model(a: ModelSpec, b: ModelSpec) -> bool:
    """Everything but the attention kernel, which switches in place."""
    return replace(a, attn_implementation=None) == replace(b, attn_implementation=None)


class ModelSlot:
    """Holds at most one loaded model (torch objects: used by one thread at a time).
    The CLI empties it after each model; the app keeps it between runs."""

    def __init__(self, loader: Callable[[ModelSpec], LoadedModel] | None = None) -> None:
        self.loader = loader  # None: ctxscope.core.model.loading.load_model, looked up at each load
        self.loaded: LoadedModel | None = None
        self.spec: ModelSpec | None = None

    def acquire(self, spec: ModelSpec) -> LoadedModel:
        """The model of ``spec`` with its kernel: reused when already here (switching
        the kernel in place if only that differs), else the old one is dropped first —
        two models never share the device's memory."""
        if self.loaded is not None and self.spec is not None and _same_model(self.spec, spec):
            return self.switch(spec)
        from ctxscope.core.model import loading

        self.drop()
        self.loaded, self.spec = (self.loader or loading.load_model)(spec), spec
        return self.loaded

    def switch(self, spec: ModelSpec) -> LoadedModel:
        from ctxscope.core.model.loading import switch_attention

        assert self.loaded is not None
        if spec.attn_implementation and spec.attn_implementation != self.loaded.attn_implementation:
            self.loaded = switch_attention(self.loaded, spec.attn_implementation,
                                           trust_remote_code=spec.trust_remote_code)
        self.spec = spec
        return self.loaded

    def drop(self) -> None:
        """Release the model and give its memory back to the device."""
        from ctxscope.core.measure.memory import release

        if self.loaded is None:
            return
        device = self.loaded.device
        self.loaded = self.spec = None
        gc.collect()
        release(device)


def run_matrix(specs: Sequence[ModelSpec], config: SweepConfig | Callable[[LoadedModel], SweepConfig], *,
               slot: ModelSlot | None = None, stop: threading.Event | None = None,
               confirm: Callable[[MemoryCheck], bool] | None = None,
               strict: bool = False,
               caches: Sequence[str] = ()) -> Generator[MatrixEvent | SweepEvent, None, tuple[RunResult, ...]]:
    """Sweep every spec in order, loading each model (all but the kernel) once.

    ``config`` is the sweep to run, or a function of the loaded model (lengths that
    depend on its maximum positions). Yields :class:`ModelLoading`/:class:`ModelReady`
    around each load, every event of each sweep, :class:`CellFinished` after each and
    :class:`CellFailed` for a cell that cannot run (``strict``: raise its error
    instead, as a single sweep does). Returns the results in measurement order; a
    cancelled sweep ends the matrix. The slot keeps the last model (a private slot is
    emptied at the end). ``caches``: one KV-cache strategy per spec (the cache axis: a
    spec repeated with another strategy reuses the loaded model); empty: the config's.
    """
    if caches and len(caches) != len(specs):
        raise ValueError(f"{len(caches)} cache strategies for {len(specs)} cells")
    own = slot is None
    slot = slot or ModelSlot()
    results: list[RunResult] = []
    try:
        for i, spec in enumerate(specs):
            if stop is not None and stop.is_set():
                break
            try:
                if slot.loaded is None or slot.spec is None or not _same_model(slot.spec, spec):
                    yield ModelLoading(spec)
                    loaded = slot.acquire(spec)
                    yield ModelReady(summarize(loaded, spec))
                else:
                    loaded = slot.switch(spec)
                cfg = config(loaded) if callable(config) else config
                if caches:
                    cfg = replace(cfg, cache=caches[i])
                result = yield from _sweep(loaded, cfg, stop, confirm)
            except CtxscopeError as exc:
                if strict:
                    raise
                yield CellFailed(spec, str(exc))
                continue
            results.append(result)
            yield CellFinished(spec, result)
            if result.status == "cancelled":
                break
    finally:
        if own:
            slot.drop()
    return tuple(results)


def _sweep(loaded: LoadedModel, cfg: SweepConfig, stop: threading.Event | None,
           confirm: Callable[[MemoryCheck], bool] | None) -> Generator[SweepEvent, None, RunResult]:
    from ctxscope.core.jobs.sweep import run_sweep

    return (yield from run_sweep(loaded, cfg, stop=stop, confirm=confirm))
