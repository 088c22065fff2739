"""Attention capture at any context length: pooled maps, profiles and per-head statistics
computed by a custom attention function, in a separate, never-timed pass.

Exports resolve lazily so ``CaptureConfig`` can be used without importing torch."""

from __future__ import annotations

from typing import Any

__all__ = ["AttentionCapture", "CaptureConfig", "CaptureUnsupported", "LayerAttention", "capture"]


def __getattr__(name: str) -> Any:
    if name == "CaptureConfig":
        from ctxscope.core.attention.config import CaptureConfig

        return CaptureConfig
    if name in __all__:
        import importlib

        module = importlib.import_module("ctxscope.core.attention.collect")

        return getattr(module, name)
    raise AttributeError(name)
