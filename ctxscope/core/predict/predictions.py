"""Analytic memory beside a report's measured points, for runs made before sweeps
recorded their own analytic block (newer runs carry it in ``header.analytic``): read
from the config when it is at hand offline (presets and local paths), quietly none for
the rest — a report never downloads. The front ends pass the result to the report
(:func:`ctxscope.report.build.render`), which imports no transformers itself."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from ctxscope.core.results import RunResult

#: dtypes whose bytes per element the analytic model knows.
_DTYPES = ("float32", "float16", "bfloat16")


def predictions_for(runs: Sequence[RunResult]) -> dict[str, dict[int, int]]:
    """Per run id: predicted weights + KV cache bytes at each of the run's lengths."""
    out: dict[str, dict[int, int]] = {}
    for run in runs:
        if (run.header.analytic or {}).get("weights_bytes") is not None:
            continue  # recorded at sweep time: the report reads it from the run itself
        source, s = run.header.model.source, run.header.settings
        local = source.startswith("preset:") or Path(source).expanduser().exists()
        if not local or s.dtype not in _DTYPES:
            continue
        try:
            predicted = _memory(source, s.dtype, tuple(s.lengths), s.batch_size)
        except Exception:  # an architecture the analytic model does not describe: no overlay
            continue
        out[run.id] = predicted
    return out


def _memory(source: str, dtype: str, lengths: tuple[int, ...], batch: int) -> dict[int, int]:
    from ctxscope.core.predict import analytic
    from ctxscope.core.model.loading import load_config
    from ctxscope.core.spec import ModelSpec

    config = load_config(ModelSpec(source, random_weights=True))
    if getattr(config, "is_encoder_decoder", False):
        raise ValueError("encoder-decoder models are not described by the analytic model")
    arch = analytic.describe_config(config)
    weights = analytic.weights_bytes(arch, dtype)
    return {n: weights + analytic.kv_bytes(arch, n, dtype, batch) for n in lengths}
