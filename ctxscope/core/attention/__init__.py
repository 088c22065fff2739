"""Attention capture at any context length: pooled maps, profiles and per-head statistics
computed by a custom attention function, in a separate, never-timed pass."""

from ctxscope.core.attention.capture import AttentionCapture, CaptureConfig, CaptureUnsupported, LayerAttention, capture

__all__ = ["AttentionCapture", "CaptureConfig", "CaptureUnsupported", "LayerAttention", "capture"]
