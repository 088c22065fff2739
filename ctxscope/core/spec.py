"""What to load and how to sweep: frozen, plain-data requests."""

from __future__ import annotations

from dataclasses import dataclass

# Imported for real, not only for mypy: wire/jobs resolve SweepConfig's hints at run time.
from ctxscope.core.attention.config import CaptureConfig
from ctxscope.core.quality.config import QualityConfig

MODES = ("prefill", "decode", "forward")
DTYPES = ("auto", "float32", "float16", "bfloat16")


@dataclass(frozen=True, slots=True)
class ModelSpec:
    """A model to load.

    ``source`` is a Hub id, a local directory, a path to a ``config.json``,
    ``preset:NAME`` or ``demo:NAME``. ``trust_remote_code`` is never written to results.
    ``rope_scaling``: ``linear:F``, ``dynamic:F`` or ``yarn:F`` set on the config before
    the weights load (:mod:`ctxscope.core.model.rope`), ``None`` for the model as trained.
    """

    source: str
    dtype: str = "auto"
    device: str = "auto"
    device_map: str | None = None
    attn_implementation: str | None = None
    revision: str | None = None
    random_weights: bool = False
    trust_remote_code: bool = False
    rope_scaling: str | None = None


@dataclass(frozen=True, slots=True)
class SweepConfig:
    """How to sweep one loaded model over context lengths.

    Attributes
    ----------
    lengths
        Token counts per sequence, measured in ascending order.
    modes
        Subset of ``prefill``/``decode`` (decoders) or ``forward`` (encoders);
        empty means every mode the model supports.
    only_applicable_modes
        Drop requested modes the model lacks instead of refusing them (a front end that
        offers every mode before it knows the model); still an error when none is left.
    warmup
        Untimed calls after the memory pass, before the timed ones (at least one: the
        memory pass is not a warm-up).
    min_repeats, max_repeats, budget_s, target_rel_iqr
        Timed calls repeat until IQR/median ≤ ``target_rel_iqr`` (after at least
        ``min_repeats``), or ``budget_s`` seconds of timed calls, or ``max_repeats``.
    continue_after_oom
        Keep measuring longer lengths of a mode after it ran out of memory.
    threads
        CPU threads torch uses for the sweep (``None``: leave torch's setting). Set for
        the sweep only and restored after; recorded in the run either way, since CPU
        latencies depend on it.
    cache
        The KV-cache strategy (:mod:`ctxscope.core.measure.kv_cache`): ``"dynamic"``
        (transformers' default ``DynamicCache``: grows by concatenation, copying the cache
        at every step), ``"static"`` (``StaticCache``: preallocated for L + 1 tokens and
        written in place, as compiled generation uses it), ``"fp8"``, ``"int4"``,
        ``"int2"`` (``QuantizedCache``) or ``"offload"`` (layers on the host, GPU only).
        The quality passes read their targets through a cache of this strategy.
    kv_group_size, kv_residual
        The group-wise integer strategies' group size and full-precision residual window
        in tokens (``None``: transformers' defaults, 64 and 128).
    isolation
        ``"off"``, or ``"strict"``: refuse to start while another process holds the
        GPU (on CPU: while other processes keep a core busy), as optimum-benchmark's
        device isolation does.
    force
        Run points the memory guard predicts cannot fit (see :mod:`ctxscope.core.predict.guard`)
        instead of skipping them.
    reuse_prefill_cache
        Seed the decode point at L with the cache of the last timed prefill at L
        instead of a fresh untimed prefill (full-attention caches only; same tokens,
        same cache). Saves one prefill per length.
    """

    lengths: tuple[int, ...]
    modes: tuple[str, ...] = ()
    only_applicable_modes: bool = False
    batch_size: int = 1
    warmup: int = 1
    min_repeats: int = 5
    max_repeats: int = 100
    budget_s: float = 2.0
    target_rel_iqr: float = 0.05
    continue_after_oom: bool = False
    allow_beyond_max: bool = False
    force: bool = False
    threads: int | None = None
    isolation: str = "off"
    cache: str = "dynamic"
    kv_group_size: int | None = None
    kv_residual: int | None = None
    seed: int = 0
    telemetry_hz: float = 10.0
    reuse_prefill_cache: bool = True
    attention: CaptureConfig | None = None  # capture attention at every length (separate, untimed pass)
    attention_text: str = "random"  # "random", "sample" or a path to a UTF-8 text file
    needle: str | None = None
    needle_depth: float = 50.0
    quality: QualityConfig | None = None  # loss vs context and needle retrieval (separate, untimed passes)
    breakdown: bool = False  # after each timed point, a profiled pass splits its time by component
