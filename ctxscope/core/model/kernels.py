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


# The fast paths of recurrent layers, by layer kind (core.results.LAYER_KINDS): (import
# name, distribution). Without them transformers runs its reference PyTorch code for those
# layers — correct, and much slower (a chunked scan in Python loops): a state-space model
# measured that way is not the model its authors time, and a comparison must say so.
_MIXER_PACKAGES = {
    "mamba": (("mamba_ssm", "mamba-ssm"), ("causal_conv1d", "causal-conv1d")),
    "hybrid": (("mamba_ssm", "mamba-ssm"), ("causal_conv1d", "causal-conv1d")),
    "linear_attention": (("fla", "flash-linear-attention"), ("causal_conv1d", "causal-conv1d")),
    "conv": (("causal_conv1d", "causal-conv1d"),),
}


def mixer_fallback(kinds: tuple[str, ...] | list[str]) -> str | None:
    """One sentence naming the fast-path packages of these layer kinds that are missing
    (their layers then run transformers' reference PyTorch implementation), or ``None``."""
    missing = sorted({dist for kind in set(kinds) for module, dist in _MIXER_PACKAGES.get(kind, ())
                      if not _installed(module)})
    if not missing:
        return None
    return (f"{', '.join(missing)} not installed: the recurrent layers ran transformers' reference PyTorch "
            "implementation (correct, much slower than the fused kernels)")
