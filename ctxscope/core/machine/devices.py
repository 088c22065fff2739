"""Resolve ``--device`` and ``--dtype`` strings into torch objects, with clear errors."""

from __future__ import annotations

import re

import torch

from ctxscope.core.errors import BadInputError
from ctxscope.core.spec import DTYPES

_TORCH_DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}


def resolve_device(name: str) -> torch.device:
    """``auto`` picks CUDA, then MPS, then CPU; explicit devices must exist here."""
    name = name.strip().lower()
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda", torch.cuda.current_device())
        if torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if name == "cpu":
        return torch.device("cpu")
    if name == "mps":
        if not torch.backends.mps.is_available():
            raise BadInputError("device 'mps' is not available on this machine")
        return torch.device("mps")
    match = re.fullmatch(r"cuda(?::(\d+))?", name)
    if not match:
        raise BadInputError(f"unknown device {name!r}: use auto, cpu, cuda, cuda:N or mps")
    if not torch.cuda.is_available():
        build = "a CPU-only build" if torch.version.cuda is None else f"built for CUDA {torch.version.cuda}"
        raise BadInputError(f"device {name!r} requested but CUDA is not available (torch {torch.__version__} is {build})")
    index = int(match.group(1)) if match.group(1) else torch.cuda.current_device()
    if index >= torch.cuda.device_count():
        raise BadInputError(f"device {name!r} does not exist: this machine has {torch.cuda.device_count()} CUDA device(s)")
    return torch.device("cuda", index)


def resolve_dtype(name: str, device: torch.device, checkpoint_dtype: torch.dtype | None) -> torch.dtype:
    """``auto`` is float32 on CPU; on accelerators the checkpoint's half type, else bf16/fp16."""
    if name not in DTYPES:
        raise BadInputError(f"unknown dtype {name!r}: use one of {', '.join(DTYPES)}")
    if name != "auto":
        dtype = _TORCH_DTYPES[name]
        if dtype == torch.bfloat16 and device.type == "cuda" and not torch.cuda.is_bf16_supported():
            raise BadInputError(f"bfloat16 is not supported on {torch.cuda.get_device_name(device)}: use float16")
        return dtype
    if device.type == "cpu":
        # Half types are emulated on most CPUs: float32 is what CPU users actually run.
        return torch.float32
    if checkpoint_dtype in (torch.float16, torch.bfloat16):
        if checkpoint_dtype == torch.bfloat16 and device.type == "cuda" and not torch.cuda.is_bf16_supported():
            return torch.float16
        return checkpoint_dtype
    if device.type == "cuda" and torch.cuda.is_bf16_supported():
        return torch.bfloat16
    return torch.float16


def dtype_name(dtype: torch.dtype) -> str:
    """``torch.bfloat16`` → ``"bfloat16"``."""
    return str(dtype).removeprefix("torch.")


def emulated_dtype_note(device: str, dtype: str) -> str | None:
    """Why a CPU run in a half type will time the emulation, not the dtype, or ``None``.

    Without native instructions (AVX512-BF16 / AMX for bfloat16, AMX-FP16 for float16)
    torch converts every operand to float32 and back: on this project's 2-core Xeon VM a
    GPT-2 prefill in bfloat16 took 26–41× as long as in float32 (float16 likewise)."""
    if not device.startswith("cpu") or dtype not in ("bfloat16", "float16"):
        return None
    native = (torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported() if dtype == "bfloat16"
              else torch.cpu._is_amx_fp16_supported())
    if native:
        return None
    return (f"{dtype} on this CPU is emulated (no native {dtype} instructions): expect latencies some 26–41× those of "
            "float32 (measured on a 2-core Xeon VM); use float32 for CPU figures")
