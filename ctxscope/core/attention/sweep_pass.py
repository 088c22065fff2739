"""The attention pass of a sweep: one capture per length, after that length's timed
points, never timed itself. Failures (out of memory included) are data."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ctxscope.core.attention.collect import CaptureUnsupported, capture
from ctxscope.core.blocks import AttentionEntry
from ctxscope.core.attention.config import CaptureConfig
from ctxscope.core.attention.storage import attention_file_name, entries_of
from ctxscope.core.attention.text import build_input, load_tokenizer
from ctxscope.core.errors import BadInputError, CtxscopeError
from ctxscope.core.events import AttentionResult
from ctxscope.core.measure.memory import classify_failure, release

if TYPE_CHECKING:
    from ctxscope.core.model.loading import LoadedModel
    from ctxscope.core.spec import SweepConfig


def prepare(loaded: LoadedModel, cfg: SweepConfig) -> Any:
    """Check the attention settings before the sweep starts; returns the tokenizer (or
    ``None``) so bad input fails before anything is measured."""
    if cfg.attention is None:
        return None
    if not isinstance(cfg.attention, CaptureConfig):
        raise BadInputError("attention settings must be a CaptureConfig")
    needs_tokenizer = cfg.attention_text != "random" or bool(cfg.needle)
    tokenizer = load_tokenizer(loaded) if needs_tokenizer else None
    # Validate text, needle and layers at the smallest length, without running the model.
    from ctxscope.core.attention.collect import resolve_layers

    try:
        resolve_layers(cfg.attention.layers, loaded.info.num_layers, loaded.info.layer_kinds)
    except CaptureUnsupported:
        pass  # a model with no attention layer: each length records the reason, as a skip
    build_input(loaded, min(cfg.lengths), text=cfg.attention_text, needle=cfg.needle,
                needle_depth=cfg.needle_depth, tokenizer=tokenizer)
    return tokenizer


def settings_of(cfg: SweepConfig) -> dict[str, Any] | None:
    if cfg.attention is None:
        return None
    a = cfg.attention
    return {"tiles": a.tiles, "layers": list(a.layers), "profile_rows": list(a.profile_rows), "text": cfg.attention_text,
            "needle": cfg.needle, "needle_depth": cfg.needle_depth if cfg.needle else None,
            "sink_tokens": a.sink_tokens, "local_window": a.local_window}


def run_attention(loaded: LoadedModel, cfg: SweepConfig, length: int, tokenizer: Any, run_id: str) -> AttentionResult:
    """Capture at ``length``; an out-of-memory or other failure becomes a failed result."""
    failure: AttentionResult | None = None
    try:
        inp = build_input(loaded, length, batch=1, text=cfg.attention_text, seed=cfg.seed, needle=cfg.needle,
                          needle_depth=cfg.needle_depth, tokenizer=tokenizer)
        capture_cfg = cfg.attention
        if capture_cfg is None:  # the sweep plans this pass only with attention settings
            raise BadInputError("no attention settings for the attention pass")
        if inp.span is not None:
            from dataclasses import replace

            capture_cfg = replace(capture_cfg, span=inp.span)
        cap = capture(loaded, inp.ids.to(loaded.device), capture_cfg)
        entries = tuple(entries_of(cap, attention_file_name(run_id), inp.text_kind))
        return AttentionResult(length=length, status="ok", capture=cap, tokens=inp.tokens, entries=entries)
    except CaptureUnsupported as exc:  # nothing to capture (no attention layer, or not through the interface)
        failure = AttentionResult(length=length, status="skipped", error=str(exc))
    except CtxscopeError as exc:
        failure = AttentionResult(length=length, status="error", error=str(exc))
    except Exception as exc:
        status, message = classify_failure(exc)
        failure = AttentionResult(length=length, status=status, error=message)
    release(loaded.device, collect=True)  # outside the except block: the traceback is gone
    entry: AttentionEntry = {"length": length, "status": failure.status, "error": failure.error, "stats": {}}
    return AttentionResult(length=failure.length, status=failure.status, error=failure.error, entries=(entry,))
