"""Which attention kernels can run here, decided before anything loads.

Cheap on purpose (a package lookup, no torch or transformers import): the app asks
while it builds its window, ``doctor`` asks, and loading asks before the weights are
read, so a kernel that cannot run is one line up front instead of an error after a
multi-GB load, or a silent substitute: transformers 5.x replaces a missing
``flash_attn`` with a kernel downloaded from the Hub when the ``kernels`` package is
installed, and the run would be labelled with a kernel it did not use.
"""

from __future__ import annotations

import importlib.util

#: The kernels the app offers, in its order; ``--attn`` accepts any transformers name.
KERNELS = ("sdpa", "eager", "flash_attention_2", "flex_attention")

# Kernels that need a package of their own: (import name, what to install).
_PACKAGES = {"flash_attention_2": ("flash_attn", "pip install flash-attn (NVIDIA GPUs)"),
             "flash_attention_3": ("flash_attn_interface", "FlashAttention 3 from its repository (Hopper GPUs)")}


def _installed(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


def is_hub_kernel(name: str) -> bool:
    """``org/repo[:kernel]``: a kernel transformers downloads from the Hub and runs."""
    return "/" in name


def kernel_problem(name: str | None, *, trust_remote_code: bool = False) -> str | None:
    """Why the attention kernel ``name`` cannot run on this machine, in one line; ``None``
    when it can (or when ``name`` is None: the model's default)."""
    if name is None:
        return None
    if is_hub_kernel(name):
        if not trust_remote_code:
            return (f"{name} is a kernel from the Hugging Face Hub: its code would be downloaded and run; "
                    "pass --trust-remote-code if you trust it")
        if not _installed("kernels"):
            return f"{name} needs the kernels package (pip install kernels)"
        return None
    needs = _PACKAGES.get(name)
    if needs is not None and not _installed(needs[0]):
        return f"{name} is not installed: {needs[1]}; sdpa and eager always work"
    return None


def usable_kernels() -> tuple[str, ...]:
    """:data:`KERNELS` that can run here."""
    return tuple(k for k in KERNELS if kernel_problem(k) is None)
