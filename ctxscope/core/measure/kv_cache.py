"""KV-cache strategies: one axis, like the attention kernel and the dtype.

``dynamic`` is transformers' default ``DynamicCache`` (grows by concatenation); ``static``
its preallocated ``StaticCache``; ``fp8`` ``QuantizedCache(backend="fp8")`` (keys and
values in float8 e4m3 with one scale per layer tensor, calibrated on the prefill; no
extra package, runs on CPU); ``int4`` / ``int2`` the group-wise integer backends
(optimum-quanto or hqq, whichever is installed: a scale and a zero-point per group of
``group_size`` values, and the newest ``residual`` tokens kept in full precision until
they are flushed into the quantized part); ``offload`` a ``DynamicCache`` whose layers
wait on the host and are moved to the GPU one at a time.

Which strategy a model's cache can use is decided per layer kind, from the config alone
(before any weights load): see :func:`refusal`.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ctxscope.core.errors import BadInputError

STRATEGIES = ("dynamic", "static", "fp8", "int4", "int2", "offload")
QUANTIZED = ("fp8", "int4", "int2")
GROUP_WISE = ("int4", "int2")
#: The optional extra that brings an integer backend (pyproject's ``kv``).
INT_EXTRA = "pip install 'ctxscope[kv]' (optimum-quanto), or pip install hqq"
#: transformers' own defaults for the group-wise backends (QuantizedLayer).
DEFAULT_GROUP_SIZE = 64
DEFAULT_RESIDUAL = 128

#: Why a quantized cache does not apply to a layer kind (transformers' cache layer types,
#: as ``get_layer_types_and_kwargs`` names them).
_NOT_QUANTIZABLE = {
    "sliding_attention": "its sliding-window layers keep only their last window; transformers' QuantizedCache "
                         "keeps every token of every layer, so it would hold more than the model's own cache",
    "chunked_attention": "its chunked-attention layers keep only their chunk; transformers' QuantizedCache keeps "
                         "every token of every layer, so it would hold more than the model's own cache",
    "linear_attention": "its linear-attention / state-space layers keep a fixed-size recurrent state, not keys "
                        "and values: there is nothing that grows with the context to quantize",
    "conv": "its short-convolution layers keep a fixed-size convolution state, not keys and values: there is "
            "nothing that grows with the context to quantize",
    "hybrid": "its hybrid layers pair attention with a state-space state, and transformers has no quantized "
              "layer for that pair",
    "hybrid_sliding": "its hybrid layers pair sliding attention with a state-space state, and transformers has no "
                      "quantized layer for that pair",
}


@dataclass(frozen=True, slots=True)
class KVOptions:
    """Options of the group-wise integer strategies (``None``: transformers' defaults)."""

    group_size: int | None = None
    residual: int | None = None


def parse_caches(text: str | None) -> tuple[str, ...]:
    """``dynamic`` or a comma list such as ``dynamic,fp8,int4``, checked (duplicates dropped).

    Raises
    ------
    BadInputError
        An unknown strategy or an empty list.
    """
    items = tuple(dict.fromkeys(x.strip().lower() for x in (text or "dynamic").split(",") if x.strip()))
    if not items:
        raise BadInputError("--cache: give a strategy such as dynamic, or a list such as dynamic,fp8")
    for item in items:
        if item not in STRATEGIES:
            raise BadInputError(f"unknown cache {item!r}: use {', '.join(STRATEGIES)} (or a comma list of them)")
    return items


def int_backend() -> str | None:
    """The group-wise backend installed here: ``"quanto"``, ``"hqq"`` or ``None``."""
    if importlib.util.find_spec("optimum") is not None and importlib.util.find_spec("optimum.quanto") is not None:
        return "quanto"
    if importlib.util.find_spec("hqq") is not None:
        return "hqq"
    return None


def check_options(strategies: str | tuple[str, ...], options: KVOptions) -> None:
    """Refuse options that no strategy asked for takes, or out of range, in one line
    (a list such as ``dynamic,int4`` takes them for its group-wise cells)."""
    asked = (strategies,) if isinstance(strategies, str) else strategies
    given = [name for name, value in (("--kv-group-size", options.group_size), ("--kv-residual", options.residual))
             if value is not None]
    if given and not any(s in GROUP_WISE for s in asked):
        raise BadInputError(f"{' and '.join(given)} appl{'y' if len(given) > 1 else 'ies'} to --cache int4 / int2 "
                            f"(group-wise), not {', '.join(asked)}"
                            + (" (fp8 keeps one scale per layer tensor)" if "fp8" in asked else ""))
    if options.group_size is not None and options.group_size < 1:
        raise BadInputError(f"--kv-group-size must be at least 1, not {options.group_size}")
    if options.residual is not None and options.residual < 0:
        raise BadInputError(f"--kv-residual must be 0 or more tokens, not {options.residual}")


def refusal(strategy: str, layer_types: tuple[str, ...], device_type: str, *, is_decoder: bool = True) -> str | None:
    """Why ``strategy`` cannot run for a model with these cache layer types on this device
    type (one line), or ``None`` when it can. ``layer_types`` are transformers' cache layer
    types (``full_attention``, ``sliding_attention``, ``linear_attention``, ``conv``,
    ``hybrid``…), read from the config."""
    if strategy == "dynamic":
        return None
    if not is_decoder:
        return f"--cache {strategy} applies to decoders (an encoder keeps no KV cache)"
    if strategy == "offload":
        if device_type != "cuda":
            return ("--cache offload moves cache layers between the GPU and the host; on "
                    f"{device_type.upper() if device_type == 'cpu' else device_type} the cache already lives in host "
                    "memory, so there is nothing to offload (it needs a CUDA device)")
        return None
    if strategy in QUANTIZED:
        for kind in dict.fromkeys(layer_types):
            if kind != "full_attention":
                why = _NOT_QUANTIZABLE.get(kind, f"its {kind} layers hold no keys and values to quantize")
                return f"--cache {strategy} does not apply to this model: {why}"
        if strategy in GROUP_WISE and int_backend() is None:
            return f"--cache {strategy} needs a group-wise quantization backend: {INT_EXTRA}"
    return None


def layer_types_of(config: Any) -> tuple[str, ...]:
    """transformers' cache layer types of a config (empty for an encoder or an unknown one)."""
    from transformers.cache_utils import get_layer_types_and_kwargs

    try:
        types, _ = get_layer_types_and_kwargs(config.get_text_config(decoder=True))
    except (AttributeError, TypeError, ValueError):
        return ()
    return tuple(str(t) for t in types)


def check_strategy(strategy: str, config: Any, device_type: str, options: KVOptions = KVOptions(), *,
                   is_decoder: bool = True) -> None:
    """Raise :class:`BadInputError` when ``strategy`` cannot run for ``config`` here."""
    if strategy not in STRATEGIES:
        raise BadInputError(f"unknown cache {strategy!r}: use {', '.join(STRATEGIES)}")
    if strategy in GROUP_WISE:  # the other cells of a list ignore the group-wise options
        check_options(strategy, options)
    reason = refusal(strategy, layer_types_of(config), device_type, is_decoder=is_decoder)
    if reason is not None:
        raise BadInputError(reason)
    if strategy in GROUP_WISE and device_type == "cpu":
        _say_if_quanto_builds()


_told_build = False


def quanto_cpu_build_pending() -> bool:
    """Whether optimum-quanto will compile its CPU unpacking kernel on first use: it builds
    ``quanto_cpp`` into its own package directory with torch's C++ extension loader (about
    50 s on a 2-core machine, in the first point's untimed pass), once per torch version."""
    if int_backend() != "quanto":
        return False
    spec = importlib.util.find_spec("optimum.quanto")
    if spec is None or not spec.submodule_search_locations:
        return False
    from pathlib import Path

    build = Path(list(spec.submodule_search_locations)[0]) / "library" / "extensions" / "cpp" / "build"
    return not (build / "quanto_cpp.so").exists()


def _say_if_quanto_builds() -> None:
    # A minute of silence on the first point reads as a hang; say it once per process.
    global _told_build
    if not _told_build and quanto_cpu_build_pending():
        import sys

        print("optimum-quanto: building its CPU kernel once (about a minute on 2 cores) …", file=sys.stderr,
              flush=True)
        _told_build = True


def check_before_loading(spec: Any, strategy: str, options: KVOptions = KVOptions()) -> None:
    """:func:`check_strategy` for a :class:`~ctxscope.core.spec.ModelSpec`, from its config
    alone (no weights load): a matrix fails before its first cell, not at the refused one."""
    if strategy == "dynamic":
        return
    from ctxscope.core.machine.devices import resolve_device
    from ctxscope.core.model.loading import load_config
    from ctxscope.core.model.modelinfo import is_decoder_config

    config = load_config(spec)
    check_strategy(strategy, config, resolve_device(spec.device).type, options, is_decoder=is_decoder_config(config))


def make_cache(strategy: str, config: Any, *, length: int = 0, options: KVOptions = KVOptions()) -> Any:
    """A fresh, empty cache of ``strategy`` for ``config``; ``length`` sizes a static cache
    (a prompt of ``length`` tokens and one generated token)."""
    from transformers import DynamicCache, QuantizedCache, StaticCache

    if strategy == "dynamic":
        return DynamicCache(config=config)
    if strategy == "static":
        return StaticCache(config=config, max_cache_len=length + 1)
    if strategy == "offload":
        return DynamicCache(config=config, offloading=True)
    if strategy == "fp8":
        return QuantizedCache(backend="fp8", config=config)
    if strategy in GROUP_WISE:
        backend = int_backend()
        if backend is None:
            raise BadInputError(f"--cache {strategy} needs a group-wise quantization backend: {INT_EXTRA}")
        return QuantizedCache(backend=backend, config=config, nbits=4 if strategy == "int4" else 2,
                              q_group_size=options.group_size or DEFAULT_GROUP_SIZE,
                              residual_length=DEFAULT_RESIDUAL if options.residual is None else options.residual)
    raise BadInputError(f"unknown cache {strategy!r}: use {', '.join(STRATEGIES)}")


def factory(strategy: str, config: Any, options: KVOptions = KVOptions()) -> Callable[[int], Any]:
    """``make_cache`` bound to a strategy: a function of the tokens the cache will hold."""
    def build(length: int) -> Any:
        return make_cache(strategy, config, length=length, options=options)
    return build


def describe(strategy: str, options: KVOptions = KVOptions()) -> str:
    """The strategy in a few words, with its backend and options where they apply."""
    if strategy in GROUP_WISE:
        backend = int_backend() or "no backend"
        size = options.group_size or DEFAULT_GROUP_SIZE
        residual = DEFAULT_RESIDUAL if options.residual is None else options.residual
        return f"{strategy} ({backend}, groups of {size}, {residual}-token full-precision residual)"
    return {"fp8": "fp8 (float8 e4m3, one scale per layer tensor)", "offload": "offload (layers on the host)",
            "static": "static (preallocated)", "dynamic": "dynamic (transformers' default)"}.get(strategy, strategy)
