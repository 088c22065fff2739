"""Load a model from any supported source into a :class:`LoadedModel`."""

from __future__ import annotations

import os
import re
import warnings
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from ctxscope.core.machine.devices import resolve_device, resolve_dtype
from ctxscope.core.errors import BadInputError, CtxscopeError, ModelLoadError
from ctxscope.core.model.modelinfo import describe, is_decoder_config
from ctxscope.core.model.presets import preset_path
from ctxscope.core.results import ModelInfo
from ctxscope.core.spec import ModelSpec
from ctxscope.core.model.weights import fill_random_weights

if TYPE_CHECKING:
    from transformers import PretrainedConfig, PreTrainedModel

_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*(/[\w.-]+)?$")


@dataclass(frozen=True)
class LoadedModel:
    """A model ready to sweep. Holds torch objects: it never crosses a thread boundary."""

    model: PreTrainedModel
    config: PretrainedConfig
    info: ModelInfo
    device: torch.device
    dtype: torch.dtype
    attn_implementation: str
    device_map: str | None = None
    rope_scaling: str | None = None  # "yarn:4": set on the config before the weights loaded


@dataclass(frozen=True, slots=True)
class _Source:
    kind: str  # "config" (random weights) or "checkpoint"
    location: str


def check_source(spec: ModelSpec) -> None:
    """Cheap validation of ``spec.source`` (no loading, no demo conversion), so a
    front end can reject a bad source before announcing a load."""
    _resolve_source(spec, convert_demos=False)
    from ctxscope.core.model.rope import parse_rope_scaling

    parse_rope_scaling(spec.rope_scaling)  # the syntax; whether the model has RoPE is asked of its config
    device = resolve_device(spec.device)
    if spec.dtype != "auto" or device.type == "cpu":  # auto is a half type on accelerators
        check_kernel_dtype(spec.attn_implementation, resolve_dtype(spec.dtype, device, None))
    # Whether the kernel is installed is asked at load time, not here: a matrix skips
    # a kernel this machine (or a cluster node) lacks and measures the others.


def check_rope(spec: ModelSpec) -> None:
    """Refuse ``spec.rope_scaling`` for a model whose position scheme has no such option,
    from its config alone (a matrix fails before its first cell, not at the scaled one)."""
    if spec.rope_scaling is None:
        return
    from ctxscope.core.model.rope import apply_rope_scaling

    apply_rope_scaling(load_config(spec), spec.rope_scaling, spec.source)


def check_positions(spec: ModelSpec, lengths: tuple[int, ...]) -> None:
    """Refuse lengths beyond the model's positions from its config alone, with the line
    the sweep gives once loaded: ``--lengths 256k`` for a 1B model filled 5 GB with
    weights before being refused."""
    from ctxscope.core.lengths import beyond_positions
    from ctxscope.core.model.modelinfo import text_config
    from ctxscope.core.model.rope import learns_positions

    config = load_config(spec)
    if learns_positions(config):
        return  # its table, once loaded, says more: no length past it runs even when allowed
    limit = getattr(text_config(config), "max_position_embeddings", None)
    if isinstance(limit, bool) or not isinstance(limit, int):
        limit = None  # as ModelInfo reads it once loaded
    if problem := beyond_positions(limit, lengths):
        raise BadInputError(problem)


def load_config(spec: ModelSpec) -> Any:
    """The transformers config of ``spec``'s source (no weights loaded)."""
    return _load_config(_resolve_source(spec), spec)


def _resolve_source(spec: ModelSpec, *, convert_demos: bool = True) -> _Source:
    src = spec.source.strip()
    if not src:
        raise BadInputError("empty model source: give a Hub id, a directory, a config.json, preset:NAME or demo:NAME")
    if src.startswith("preset:"):
        return _Source("config", str(preset_path(src.removeprefix("preset:"))))
    if src.startswith("demo:"):
        from ctxscope.core.model.demos import DEMOS, resolve_demo

        name = src.removeprefix("demo:")
        if not convert_demos:
            if name not in DEMOS:
                raise BadInputError(f"unknown demo {name!r}: choose one of {', '.join(sorted(DEMOS))}")
            return _Source("checkpoint", name)
        return _Source("config" if spec.random_weights else "checkpoint", str(resolve_demo(src.removeprefix("demo:"))))
    path = Path(src).expanduser()
    if path.is_file():
        if path.suffix != ".json":
            raise BadInputError(f"{src}: a file source must be a config.json (for GGUF, give its directory)")
        _check_config_file(path, src)
        return _Source("config", str(path))
    if path.is_dir():
        if not (path / "config.json").is_file():
            raise BadInputError(f"{src}: directory has no config.json, not a transformers model")
        _check_config_file(path / "config.json", src)
        if not spec.random_weights and not _has_weights(path):
            raise BadInputError(f"{src}: the directory has a config.json but no weights (*.safetensors, *.bin, *.gguf); "
                                f"add --random-weights, or give {path / 'config.json'} to measure the architecture")
        return _Source("config" if spec.random_weights else "checkpoint", str(path))
    looks_like_path = src.startswith((".", "/", "~")) or src.endswith(".json") or os.sep in src.strip("/").split("/", 1)[-1]
    if looks_like_path or not _HUB_ID.match(src) or src.count("/") > 1:
        raise BadInputError(f"{src}: no such file or directory, and not a Hub id, preset:NAME or demo:NAME")
    return _Source("config" if spec.random_weights else "checkpoint", src)


#: A config.json is a few KiB; transformers reads it whole, so a bigger one is refused first.
MAX_CONFIG_BYTES = 16 * 1024**2


def _check_config_file(path: Path, src: str) -> None:
    from ctxscope.core.files import checked_size, why_unreadable

    try:
        checked_size(path, MAX_CONFIG_BYTES)
    except OSError as exc:
        raise BadInputError(f"{src}: its config.json cannot be used ({why_unreadable(exc)})") from None


_WEIGHT_PATTERNS = ("*.safetensors", "*.bin", "*.gguf", "*.pt", "*.pth", "*.safetensors.index.json", "*.bin.index.json")


def _has_weights(path: Path) -> bool:
    return any(next(path.glob(pattern), None) is not None for pattern in _WEIGHT_PATTERNS)


def _first_line(exc: BaseException) -> str:
    lines = [line.strip() for line in str(exc).strip().splitlines() if line.strip()]
    return (lines[0] if lines else type(exc).__name__)[:300]


def _raised_reading_pickle(exc: BaseException) -> bool:
    """Whether ``exc`` (or what caused it) came out of torch's weights-only unpickler.

    A damaged ``.bin`` fails there with whatever its bytes happen to trigger (IndexError,
    KeyError, UnicodeDecodeError as well as UnpicklingError): the place, not the type, says
    what the user needs to hear.
    """
    import traceback

    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        for frame, _ in traceback.walk_tb(current.__traceback__):
            path = frame.f_code.co_filename.replace("\\", "/")
            if path.endswith(("torch/serialization.py", "torch/_weights_only_unpickler.py")):
                return True
        current = current.__cause__ or current.__context__
    return False


def _load_failure(source: str, exc: BaseException) -> ModelLoadError:
    """One line a user can act on, for anything ``from_pretrained`` raised."""
    import pickle

    name = type(exc).__name__
    if (isinstance(exc, pickle.UnpicklingError) or "Weights only load failed" in str(exc)
            or _raised_reading_pickle(exc)):
        return ModelLoadError(f"{source}: a .bin weights file is not loadable safely (it holds more than tensors, or is "
                              "damaged); ctxscope never unpickles code: convert the checkpoint to safetensors")
    if name == "SafetensorError" or "safetensors" in type(exc).__module__:
        return ModelLoadError(f"{source}: a .safetensors weights file is damaged or not safetensors ({_first_line(exc)})")
    return ModelLoadError(f"{source}: {_first_line(exc)}")


def _load_config(source: _Source, spec: ModelSpec) -> Any:
    from transformers import AutoConfig

    try:
        return AutoConfig.from_pretrained(source.location, revision=spec.revision, trust_remote_code=spec.trust_remote_code)
    except ValueError as exc:
        msg = str(exc).splitlines()[0]
        if "trust_remote_code" in str(exc):
            msg = "this model needs custom code from its repository: pass --trust-remote-code if you trust it"
        raise ModelLoadError(f"{spec.source}: {msg}") from None
    except OSError as exc:
        local = Path(source.location).exists()
        if local and "valid JSON" in str(exc):
            raise ModelLoadError(f"{spec.source}: the config.json is not valid JSON (truncated or damaged?)") from None
        offline = os.environ.get("HF_HUB_OFFLINE") in ("1", "true", "TRUE", "yes")
        hint = " (HF_HUB_OFFLINE is set and it is not in the cache)" if offline and not local else ""
        raise ModelLoadError(f"{spec.source}: cannot load config{hint}: {_first_line(exc)}") from None
    except Exception as exc:  # JSON errors, missing model types in this transformers
        raise ModelLoadError(f"{spec.source}: bad config: {_first_line(exc)}") from None


def _model_class(config: Any) -> Any:
    from transformers import AutoModel, AutoModelForCausalLM

    return AutoModelForCausalLM if is_decoder_config(config) else AutoModel


def load_model(spec: ModelSpec) -> LoadedModel:
    """Load ``spec`` onto its device, in inference mode (``eval()``, no grad).

    Presets, config files and ``random_weights`` build the architecture with random
    weights, skipping transformers' slow initialisation pass.

    Raises
    ------
    BadInputError, ModelLoadError
        With a one-line message fit for the user.
    """
    source = _resolve_source(spec)
    device = resolve_device(spec.device)
    config = _load_config(source, spec)
    from ctxscope.core.model.rope import apply_rope_scaling

    rope = apply_rope_scaling(config, spec.rope_scaling, spec.source)  # refused here, before any weights load
    if getattr(config, "is_encoder_decoder", False):
        raise ModelLoadError(f"{spec.source}: encoder-decoder models ({config.model_type}) are not supported yet")
    dtype = resolve_dtype(spec.dtype, device, getattr(config, "dtype", None))
    check_kernel_dtype(spec.attn_implementation, dtype)
    check_kernel_here(spec.attn_implementation, trust_remote_code=spec.trust_remote_code)
    if spec.device_map not in (None, "auto"):
        raise BadInputError(f"unknown device map {spec.device_map!r}: only 'auto' is supported")
    if spec.device_map and source.kind == "config":
        raise BadInputError("--device-map auto needs a checkpoint; random weights are built on one device")
    kwargs: dict[str, Any] = {"dtype": dtype, "trust_remote_code": spec.trust_remote_code}
    if spec.attn_implementation:
        kwargs["attn_implementation"] = spec.attn_implementation
    cls = _model_class(config)
    try:
        if source.kind == "config":
            from transformers.initialization import no_init_weights

            # Building straight on the target device skips a host copy; no_init_weights
            # skips the init pass, and fill_random_weights writes finite values instead.
            with no_init_weights(), torch.device(device):
                model = cls.from_config(config, **kwargs)
            # no_init_weights also skips tying (e.g. GPT-2's lm_head to its embeddings).
            model.tie_weights()
            fill_random_weights(model, seed=0, std=float(getattr(config, "initializer_range", 0.02) or 0.02))
        else:
            kwargs["device_map"] = spec.device_map or str(device)
            with warnings.catch_warnings():
                # torch's weights-only unpickler warns about pickle protocols before it
                # refuses a file; the refusal is reported below in one line.
                warnings.filterwarnings("ignore", message="Detected pickle protocol", category=UserWarning)
                model = cls.from_pretrained(source.location, revision=spec.revision, config=config, **kwargs)
    except CtxscopeError:
        raise
    except torch.OutOfMemoryError:
        raise ModelLoadError(f"{spec.source}: the weights do not fit in {device} memory") from None
    except Exception as exc:  # anything from_pretrained raises is a model that cannot load, said in one line
        raise _load_failure(spec.source, exc) from None
    model.eval()
    model.requires_grad_(False)
    attn = str(getattr(model.config, "_attn_implementation", None) or spec.attn_implementation or "default")
    info = describe(model, config, spec.source, random_weights=source.kind == "config", revision=spec.revision)
    return LoadedModel(model=model, config=model.config, info=info, device=device, dtype=dtype,
                       attn_implementation=attn, device_map=spec.device_map, rope_scaling=rope)


def check_kernel_dtype(implementation: str | None, dtype: torch.dtype) -> None:
    """Refuse, before anything loads, a kernel that cannot run in ``dtype``: FlashAttention
    exists only for half types (it would fail on the first call, after the load)."""
    if implementation and implementation.startswith("flash_attention") and dtype == torch.float32:
        raise BadInputError(f"{implementation} runs only in float16 or bfloat16, not float32: "
                            "pass --dtype bfloat16 (or float16), or another --attn")


def check_kernel_here(implementation: str | None, *, trust_remote_code: bool = False) -> None:
    """Refuse a kernel that cannot run on this machine (not installed, or a Hub kernel
    without ``trust_remote_code``) before anything loads: see :mod:`ctxscope.core.model.kernels`."""
    from ctxscope.core.model.kernels import kernel_problem

    problem = kernel_problem(implementation, trust_remote_code=trust_remote_code)
    if problem is not None:
        raise BadInputError(problem)


def switch_attention(loaded: LoadedModel, implementation: str, *, trust_remote_code: bool = False) -> LoadedModel:
    """The same weights with another attention kernel (``sdpa``, ``eager``, ...), without
    loading again: how a matrix sweep compares kernels on one copy of the model."""
    if implementation == loaded.attn_implementation:
        return loaded
    check_kernel_dtype(implementation, loaded.dtype)
    check_kernel_here(implementation, trust_remote_code=trust_remote_code)
    try:
        loaded.model.set_attn_implementation(implementation)
    except (ImportError, ValueError, KeyError) as exc:
        raise ModelLoadError(f"attention {implementation!r}: {str(exc).strip().splitlines()[0]}") from None
    actual = str(getattr(loaded.model.config, "_attn_implementation", None) or implementation)
    return replace(loaded, attn_implementation=actual)
