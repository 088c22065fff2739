"""Frozen result records and the ``ctxscope.run/1`` schema they serialise to.

Everything here is plain data (numbers, strings, tuples) so it can cross threads and
be written to JSON or SQLite; torch is not imported.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ctxscope.core.blocks import AnalyticBlock, AttentionEntry, BreakdownBlock, TelemetrySummary
from ctxscope.core.quality.records import QualityResult
from ctxscope.core.stats import LatencyStats

SCHEMA = "ctxscope.run/1"
POINT_STATUSES = ("ok", "oom", "error", "skipped")
#: What a decoder layer's mixer is (core.layer_kinds reads them off the architecture);
#: "mlp" layers (MLP or experts only) hold no cache.
LAYER_KINDS = ("full_attention", "sliding_attention", "linear_attention", "mamba", "conv", "hybrid", "mlp")
LAYER_KIND_LABELS = {"full_attention": "full attention", "sliding_attention": "sliding-window attention",
                     "linear_attention": "linear attention (gated delta rule)", "mamba": "Mamba (state space)",
                     "conv": "short convolution", "hybrid": "Mamba + attention", "mlp": "MLP / MoE only"}
LAYER_KIND_SHORT = {"full_attention": "attn", "sliding_attention": "sliding", "linear_attention": "linear",
                    "mamba": "mamba", "conv": "conv", "hybrid": "mamba+attn", "mlp": "mlp"}
RUN_STATUSES = ("running", "complete", "cancelled", "failed", "interrupted")


@dataclass(frozen=True, slots=True)
class ModelInfo:
    """What was measured: the architecture as loaded."""

    source: str
    architecture: str
    model_type: str
    params: int
    random_weights: bool
    num_layers: int
    hidden_size: int
    num_heads: int
    num_kv_heads: int
    head_dim: int
    vocab_size: int
    max_positions: int | None
    is_decoder: bool
    revision: str | None = None
    sliding_window: int | None = None
    position_limit: int | None = None  # a learned position table's size: no length beyond it can run
    #: One per decoder layer (core.layer_kinds.KINDS: full_attention, sliding_attention,
    #: linear_attention, mamba, conv, hybrid, mlp); empty for encoders and older runs.
    layer_kinds: tuple[str, ...] = ()
    active_params: int | None = None  # a mixture of experts: parameters one token uses


@dataclass(frozen=True, slots=True)
class Settings:
    """How it was measured. ``trust_remote_code`` is deliberately absent."""

    device: str
    dtype: str
    attn_implementation: str
    batch_size: int
    modes: tuple[str, ...]
    lengths: tuple[int, ...]
    warmup: int
    seed: int
    min_repeats: int
    max_repeats: int
    budget_s: float
    target_rel_iqr: float
    continue_after_oom: bool
    allow_beyond_max: bool
    device_map: str | None = None
    threads: int | None = None
    timer: str = "perf_counter"
    reuse_prefill_cache: bool = True
    attention: dict[str, Any] | None = None  # tiles, layers, text, needle, needle_depth when captured
    force: bool = False  # points the memory guard predicted cannot fit were run anyway
    cache: str = "dynamic"  # the KV-cache strategy (core.kv_cache.STRATEGIES): dynamic, static, fp8, int4, int2, offload
    #: The group-wise integer strategies' backend, group size and residual window; None otherwise.
    kv_options: dict[str, Any] | None = None
    quality: dict[str, Any] | None = None  # quality passes: what was asked, the text and windows used (core.quality)
    rope_scaling: str | None = None  # "yarn:4": RoPE scaling set on the config (core.rope); None: as trained
    breakdown: bool = False  # a profiled pass per point split its time into components (core.breakdown)


@dataclass(frozen=True, slots=True)
class Environment:
    """Where it was measured."""

    gpu_name: str | None
    gpu_memory_bytes: int | None
    driver: str | None
    cuda: str | None
    torch: str
    transformers: str
    ctxscope: str
    platform: str
    cpu: str
    python: str = ""
    cpu_count: int | None = None
    memory_bytes: int | None = None
    # Where the run was measured when that was not the machine that recorded it: the SSH
    # destination ("user@gpu-box") or the Ray node and GPU. None: this machine.
    host: str | None = None
    #: Fast-path kernels of state-space / linear-attention / convolution layers that were
    #: missing (those layers ran transformers' reference PyTorch code), in one sentence.
    mixer_fallback: str | None = None


@dataclass(frozen=True, slots=True)
class MemoryStats:
    """Memory of one pass, in bytes. GPU fields are ``None`` on CPU and vice versa.

    Split by :func:`ctxscope.core.measure.accounting.split_memory`: ``kv_cache_bytes`` is the
    key/value storage the cache holds after the pass and ``state_bytes`` its recurrent /
    convolution state (each storage once), ``activation_bytes`` = peak − allocated before
    the pass − new cache (KV + state), ``other_bytes`` = allocated before − weights − cache
    held before (inputs, workspaces; on CPU the process itself). On GPU the five add up to
    ``peak_allocated_bytes``; ``accounting_note`` says where they do not.
    ``device_used_bytes`` is this process's memory on the GPU(s) per NVML (CUDA context
    and allocator cache included), the peak over the pass.
    """

    weights_bytes: int
    kv_cache_bytes: int
    activation_bytes: int | None
    peak_allocated_bytes: int | None = None
    peak_reserved_bytes: int | None = None
    device_used_bytes: int | None = None
    peak_rss_bytes: int | None = None
    other_bytes: int | None = None
    allocated_before_bytes: int | None = None
    accounting_note: str | None = None
    #: Recurrent and convolution state the cache holds after the pass (state-space,
    #: linear-attention and short-convolution layers): fixed in size, whatever L.
    state_bytes: int | None = None
    #: CPU: bytes torch's CPU allocator handed out during the pass above what was held
    #: at its start (profiler memory events; the source of ``activation_bytes`` there).
    cpu_allocator_peak_bytes: int | None = None
    #: ``--cache offload``: the part of ``kv_cache_bytes`` held in host memory after the
    #: pass — the device memory the strategy frees (not in the device's peak).
    kv_host_bytes: int | None = None
    #: ``--cache offload``, decode: bytes one step moved between host and device, both
    #: directions (each layer brought to the device and sent back): the price per token.
    kv_traffic_bytes: int | None = None


@dataclass(frozen=True, slots=True)
class Point:
    """One (mode, length) measurement, successful or not."""

    mode: str
    length: int
    batch_size: int
    status: str
    error: str | None = None
    latency_ms: LatencyStats | None = None
    tokens_per_s: float | None = None
    memory: MemoryStats | None = None
    # Summary of the telemetry samples taken while this point ran (see
    # ctxscope.core.machine.telemetry.summarize): plain numbers keyed by name, units in the names.
    telemetry: TelemetrySummary | None = None
    # Why the timing is not clean (other processes, GPU slowdowns while timed), or None.
    contention: str | None = None
    # Where the time went (a separate profiled pass after the timed one; --breakdown).
    breakdown: BreakdownBlock | None = None


@dataclass(frozen=True, slots=True)
class RunHeader:
    """Everything known about a run before its first point."""

    id: str
    created: str
    model: ModelInfo
    settings: Settings
    environment: Environment
    # The analytic model's predictions for this run (see ctxscope.core.predict.efficiency):
    # weights bytes, per-length KV bytes / FLOPs / decode bytes, the device peak used.
    analytic: AnalyticBlock | None = None


@dataclass(frozen=True, slots=True)
class RunResult:
    """A whole run: header, final status and every point in measurement order."""

    header: RunHeader
    status: str
    points: tuple[Point, ...] = ()
    finished: str | None = None
    attention: tuple[AttentionEntry, ...] = field(default=())
    error: str | None = None  # why a failed run stopped (e.g. the CUDA context was lost)
    quality: QualityResult | None = None  # loss points and needle trials, when quality passes ran

    @property
    def id(self) -> str:
        return self.header.id

    def ok_points(self, mode: str | None = None) -> list[Point]:
        """Successful points, optionally of one mode, in measurement order."""
        return [p for p in self.points if p.status == "ok" and (mode is None or p.mode == mode)]
