"""Run one never-timed forward pass with the capture kernel and collect, per recorded
layer: a pooled T×T probability map per head, full-resolution profiles of chosen query
rows, and per-head statistics. The user's attention implementation is restored after."""

from __future__ import annotations

import inspect
import math
import threading
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from ctxscope.core.attention import kernel
from ctxscope.core.attention.records import AttentionCapture as AttentionCapture  # plain numpy records
from ctxscope.core.attention.records import LayerAttention as LayerAttention
from ctxscope.core.attention.config import CaptureConfig
from ctxscope.core.errors import BadInputError, CtxscopeError

if TYPE_CHECKING:
    from ctxscope.core.loading import LoadedModel

STAT_NAMES = ("entropy", "sink_mass", "mean_distance", "local_mass", "span_mass")


class CaptureUnsupported(CtxscopeError):
    """The model's attention does not go through transformers' AttentionInterface, or it
    has no attention layers at all: a reason, recorded as a skipped capture."""


def tile_edges(length: int, tiles: int) -> np.ndarray:
    """T + 1 token boundaries splitting [0, length) into near-equal tiles (T ≤ length)."""
    t = max(1, min(tiles, length))
    return np.round(np.linspace(0, length, t + 1)).astype(np.int64)


@dataclass
class _Layer:
    maps: torch.Tensor
    rows: torch.Tensor
    sums: dict[str, torch.Tensor]
    counts: dict[str, torch.Tensor]
    profiles: dict[int, torch.Tensor] = field(default_factory=dict)


class _Accumulator:
    def __init__(self, cfg: CaptureConfig, layers: set[int], length: int, heads: int, device: torch.device) -> None:
        self.cfg, self.layers, self.length, self.heads = cfg, layers, length, heads
        self.widest = 0
        edges = tile_edges(length, cfg.tiles)
        self.edges = edges
        self.t = len(edges) - 1
        # tile index of every token position, one copy per device that asks (a model
        # spread over GPUs by a device map runs its layers on several)
        self._tile_index = np.searchsorted(edges, np.arange(length), side="right") - 1
        self._tile_of: dict[torch.device, torch.Tensor] = {}
        self.rows = {(r + length if r < 0 else r) for r in cfg.profile_rows}
        self.data: dict[int, _Layer] = {}
        self.device = device  # the input's; each layer accumulates on its own device

    def tile_of(self, device: torch.device) -> torch.Tensor:
        if device not in self._tile_of:
            self._tile_of[device] = torch.as_tensor(self._tile_index, device=device)
        return self._tile_of[device]

    def budget_for(self, batch: int, keys: int, module: torch.nn.Module) -> int:
        """Score elements per chunk. Unless set, about a quarter of the forward pass's
        own largest activation (batch · L · MLP width), shared by the two full-size
        float32 buffers a chunk holds (scores, probabilities): so the capture pass
        peaks near the plain forward pass, whatever the model."""
        if self.cfg.budget_elements is not None:
            return self.cfg.budget_elements
        return max(1 << 16, batch * keys * self.widest // 8)

    def wants(self, layer: int | None) -> bool:
        return layer is not None and layer in self.layers

    def _layer(self, layer: int, device: torch.device) -> _Layer:
        if layer not in self.data:
            def z() -> torch.Tensor:
                return torch.zeros(self.heads, dtype=torch.float64, device=device)

            # Maps accumulate in float32 (sums of ≤ L/T values ≤ 1: ample precision) to keep
            # them at the size they are stored in; the small statistics use float64.
            # On the layer's own device: under a device map it need not be the input's.
            self.data[layer] = _Layer(
                maps=torch.zeros(self.heads, self.t, self.t, dtype=torch.float32, device=device),
                rows=torch.zeros(self.t, dtype=torch.float64, device=device),
                sums={n: z() for n in STAT_NAMES}, counts={n: z() for n in STAT_NAMES})
        return self.data[layer]

    @torch.no_grad()
    def add(self, layer: int, probs: torch.Tensor, allowed: torch.Tensor, q_start: int, causal: bool) -> None:
        b, h, c, lk = probs.shape
        if lk != self.length:
            raise CaptureUnsupported(f"layer {layer} saw {lk} keys for {self.length} tokens (a cache was used?)")
        acc = self._layer(layer, probs.device)
        tile_of = self.tile_of(probs.device)
        q_tiles = tile_of[q_start:q_start + c]
        key_tiles = torch.zeros(b, h, c, self.t, dtype=torch.float32, device=probs.device)
        key_tiles.index_add_(3, tile_of, probs)  # exact per-tile sums, no cumulative drift
        acc.maps.index_add_(1, q_tiles, key_tiles.sum(0))
        acc.rows.index_add_(0, q_tiles, torch.full((c,), float(b), dtype=torch.float64, device=probs.device))
        qpos = torch.arange(q_start, q_start + c, device=probs.device, dtype=torch.float32)
        kpos = torch.arange(lk, device=probs.device, dtype=torch.float32)
        has_keys = allowed > 0
        logn = torch.log(allowed.clamp_min(2).float())
        ent = torch.special.entr(probs).sum(-1) / logn  # -Σ p log p, one temporary
        self._acc(acc, "entropy", ent, has_keys & (allowed > 1))
        self._acc(acc, "sink_mass", probs[..., : self.cfg.sink_tokens].sum(-1), has_keys)
        mass = probs.sum(-1)
        if causal:
            # Σ p·(q − k) = q·Σp − Σ p·k: a matrix–vector product, no L-wide temporary.
            distance = qpos * mass - torch.matmul(probs, kpos)
        else:
            distance = (probs * (qpos[:, None] - kpos[None, :]).abs()).sum(-1)  # encoders: short L
        self._acc(acc, "mean_distance", distance, has_keys)
        self._acc(acc, "local_mass", self._local(probs, q_start, causal), has_keys)
        if self.cfg.span is not None:
            a, z = self.cfg.span
            sees = has_keys & (qpos >= a)[None, None, :] if causal else has_keys
            self._acc(acc, "span_mass", probs[..., a:z].sum(-1), sees)
        for row in self.rows:
            if q_start <= row < q_start + c:
                acc.profiles[row] = probs[:, :, row - q_start, :].float().mean(0).cpu()

    def _local(self, probs: torch.Tensor, q_start: int, causal: bool) -> torch.Tensor:
        """Mass within ``local_window`` tokens of each query, gathering only that band."""
        b, h, c, lk = probs.shape
        w = self.cfg.local_window
        qpos = torch.arange(q_start, q_start + c, device=probs.device)
        offsets = torch.arange(-(w - 1), w if not causal else 1, device=probs.device)
        idx = qpos[:, None] + offsets[None, :]  # [c, band]
        valid = (idx >= 0) & (idx < lk)
        band = torch.gather(probs, 3, idx.clamp(0, lk - 1).expand(b, h, c, -1))
        return (band * valid).sum(-1)

    @staticmethod
    def _acc(acc: _Layer, name: str, values: torch.Tensor, where: torch.Tensor) -> None:
        w = where.to(torch.float64)
        acc.sums[name] += (values.double() * w).sum((0, 2))
        acc.counts[name] += w.sum((0, 2))

    def result(self, length: int) -> tuple[LayerAttention, ...]:
        out = []
        for layer in sorted(self.data):
            acc = self.data[layer]
            rows = acc.rows.clamp_min(1.0)
            maps = (acc.maps / rows[None, :, None]).float().cpu().numpy()
            stats = {}
            for name in STAT_NAMES:
                if name == "span_mass" and self.cfg.span is None:
                    continue
                mean = (acc.sums[name] / acc.counts[name].clamp_min(1)).cpu().tolist()
                stats[name] = tuple(float(x) if math.isfinite(x) else float("nan") for x in mean)
            out.append(LayerAttention(length=length, layer=layer, tile_edges=self.edges.copy(), maps=maps,
                                      profiles={r: p.numpy() for r, p in sorted(acc.profiles.items())}, stats=stats))
        return tuple(out)


_capture_lock = threading.Lock()


def resolve_layers(requested: tuple[int, ...], num_layers: int, kinds: tuple[str, ...] = ()) -> set[int]:
    """The decoder layers to capture. With the layer ``kinds`` of a hybrid, only layers that
    attend: all of them by default; a layer asked for by number that does not attend is bad
    input, named with its kind (a state-space model has no layer to capture at all)."""
    from ctxscope.core.layer_kinds import KIND_LABELS, attention_layers

    attending = set(attention_layers(kinds)) if kinds else set(range(num_layers))
    if kinds and not attending:
        raise CaptureUnsupported("the model has no attention layers (all "
                                 + ", ".join(sorted({KIND_LABELS.get(k, k) for k in kinds}))
                                 + "): there is no attention map to capture")
    if not requested:
        return attending
    out = set()
    for i in requested:
        j = i + num_layers if i < 0 else i
        if not 0 <= j < num_layers:
            raise BadInputError(f"attention layer {i} does not exist: the model has {num_layers} layers")
        if j not in attending:
            raise BadInputError(f"layer {i} is {KIND_LABELS.get(kinds[j], kinds[j])}: it has no attention map "
                                f"(layers that attend: {', '.join(map(str, sorted(attending)))})")
        out.add(j)
    return out


def capture(loaded: LoadedModel, input_ids: torch.Tensor, cfg: CaptureConfig = CaptureConfig()) -> AttentionCapture:
    """Capture attention for ``input_ids`` [batch, L] with a one-off forward pass.

    The pass uses no KV cache (every layer sees all L keys) and the capture kernel; the
    model's own attention implementation is restored afterwards, even on error.

    Raises
    ------
    CaptureUnsupported
        When no layer's attention went through the interface (e.g. remote code with its
        own attention), rather than returning empty or wrong maps.
    """
    model = loaded.model
    info = loaded.info
    length = int(input_ids.shape[1])
    layers = resolve_layers(cfg.layers, info.num_layers, info.layer_kinds)
    without = tuple(sorted(set(range(info.num_layers)) - layers)) if info.layer_kinds and not cfg.layers else ()
    if cfg.tiles < 1:
        raise BadInputError("attention tiles must be at least 1")
    if cfg.span is not None and not 0 <= cfg.span[0] < cfg.span[1] <= length:
        raise BadInputError(f"marked span {cfg.span} is outside the {length} tokens")
    name = kernel.register()
    previous = getattr(model.config, "_attn_implementation", None) or "sdpa"
    acc = _Accumulator(cfg, layers, length, info.num_heads, input_ids.device)
    tc = getattr(model.config, "get_text_config", lambda: model.config)()
    acc.widest = int(getattr(tc, "intermediate_size", None) or getattr(tc, "n_inner", None) or 4 * info.hidden_size)
    with _capture_lock:
        try:
            model.set_attn_implementation(name)
            kernel.set_accumulator(acc)
            with torch.inference_mode():
                kwargs: dict[str, Any] = {"use_cache": False} if info.is_decoder else {}
                if "logits_to_keep" in inspect.signature(model.forward).parameters:
                    # Logits are not what this pass is for: all L rows of them would cost
                    # L · vocab floats (1 GiB at 8k tokens for a 32k vocabulary).
                    kwargs["logits_to_keep"] = 1
                out = model(input_ids=input_ids, **kwargs)
                del out
        except ValueError as exc:
            raise CaptureUnsupported(f"{info.source}: attention cannot be captured ({str(exc).splitlines()[0]})") from None
        finally:
            kernel.set_accumulator(None)
            model.set_attn_implementation(previous)
    if not acc.data:
        raise CaptureUnsupported(f"{info.source}: its attention does not go through transformers' AttentionInterface; "
                                 "no maps were captured")
    return AttentionCapture(length=length, layers=acc.result(length), span=cfg.span, random_weights=info.random_weights,
                            without_attention=without)
