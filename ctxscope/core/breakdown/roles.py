"""Which module plays which part of a model, and profiler ranges around each.

Modules are classified by what they are, not by where they sit, so one rule covers the
families of the architectures issue: ``nn.Embedding`` and the output embeddings are
embeddings + LM head; a class named ``*Norm*`` a norm; a Mamba / gated delta-rule /
short-convolution / lightning-attention module a recurrent mixer (with everything inside
it but its norms: its projections belong to the mixer); an ``*Attention*`` module holds
the q/k/v/o projections (its ``nn.Linear`` / ``Conv1D`` descendants), while its own code
(rotary, cache update, reshapes) is "other"; an ``*MLP*`` / ``*MoE*`` / ``*Expert*``
module is the MLP. The attention kernel itself is the function transformers dispatches
to (``ALL_ATTENTION_FUNCTIONS[impl]``, or each modeling file's
``eager_attention_forward``), wrapped for the pass in a range of its own.

Ranges nest (a norm inside an attention module, the kernel inside it): attribution takes
each profiler event's *innermost* range, so nothing is counted twice.
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import torch

PREFIX = "ctxscope::"
ROOT = PREFIX + "forward"

_RECURRENT = ("mamba", "deltanet", "shortconv", "lightning", "linearattention", "mixer", "ssm")
_MLP = ("mlp", "moe", "expert", "feedforward", "intermediate")
_CONTAINERS = ("decoderlayer", "encoderlayer", "model", "forcausallm", "lmheadmodel")


def range_name(role: str) -> str:
    return PREFIX + role


def _linear(module: torch.nn.Module) -> bool:
    # transformers' Conv1D (GPT-2's c_attn, c_proj) is a linear layer stored transposed.
    return isinstance(module, torch.nn.Linear) or type(module).__name__ == "Conv1D"


def _role_of_class(module: torch.nn.Module) -> str | None:
    name = type(module).__name__.lower()
    if isinstance(module, torch.nn.Embedding):
        return "embeddings_head"
    if "norm" in name:
        return "norms"
    # A whole layer (or model): its parts are classified, its glue is "other". A
    # "SparseMoeBlock" is an MLP; a "MambaBlock" or "GPT2Block" is a layer.
    if any(name.endswith(c) for c in _CONTAINERS):
        return None
    if name.endswith("block"):
        return "mlp" if any(k in name for k in _MLP) else None
    if any(k in name for k in _RECURRENT):
        return "recurrent"
    if "attention" in name:
        return "attention_module"
    if any(k in name for k in _MLP):
        return "mlp"
    return None


def classify(model: torch.nn.Module) -> dict[torch.nn.Module, str]:
    """The role of every module that gets a range (component names of
    :data:`~ctxscope.core.breakdown.COMPONENTS`); modules not in the mapping open none."""
    roles: dict[torch.nn.Module, str] = {}
    get_head: Any = getattr(model, "get_output_embeddings", None)
    head = get_head() if callable(get_head) else None
    if isinstance(head, torch.nn.Module):
        roles[head] = "embeddings_head"

    def visit(module: torch.nn.Module, inside: str | None) -> None:
        role = roles.get(module) or _role_of_class(module)
        if role == "norms" or role == "embeddings_head":
            roles[module] = role
        elif inside in ("recurrent", "mlp"):
            pass  # everything inside a mixer or an MLP but its norms is that component
        elif role in ("recurrent", "mlp"):
            roles[module] = role
            inside = role
        elif role == "attention_module":
            inside = "attention_module"  # no range of its own: its code is "other"
        elif inside == "attention_module" and _linear(module):
            roles[module] = "projections"
        for child in module.children():
            visit(child, inside)

    visit(model, None)
    return roles


def _wrap(fn: Callable[..., Any]) -> Callable[..., Any]:
    name = range_name("attention")

    @functools.wraps(fn)
    def ranged(*args: Any, **kwargs: Any) -> Any:
        with torch.profiler.record_function(name):
            return fn(*args, **kwargs)
    ranged.__ctxscope_ranged__ = True  # type: ignore[attr-defined]  # never wrapped twice
    return ranged


@contextmanager
def kernel_ranges(model: torch.nn.Module) -> Iterator[int]:
    """Wrap the attention functions the model dispatches to in a range; yields how many
    were wrapped (0: a model with no attention, or one that calls its kernel directly —
    then the kernel's time stays in "other")."""
    from transformers.modeling_utils import ALL_ATTENTION_FUNCTIONS

    restore: list[Callable[[], None]] = []
    impl = getattr(model.config, "_attn_implementation", None) or "eager"
    try:
        if impl != "eager" and impl in ALL_ATTENTION_FUNCTIONS:
            local = ALL_ATTENTION_FUNCTIONS._local_mapping
            had, before = impl in local, local.get(impl)
            original = ALL_ATTENTION_FUNCTIONS[impl]
            if not getattr(original, "__ctxscope_ranged__", False):
                local[impl] = _wrap(original)

                def undo() -> None:
                    if had:
                        local[impl] = before
                    else:
                        local.pop(impl, None)
                restore.append(undo)
        # The eager path is each modeling file's own function (also the fallback some
        # attention classes use whatever the implementation).
        modules = {type(m).__module__ for m in model.modules() if "attention" in type(m).__name__.lower()}
        for mod_name in sorted(modules):
            mod = sys.modules.get(mod_name)
            fn = getattr(mod, "eager_attention_forward", None)
            if mod is None or fn is None or getattr(fn, "__ctxscope_ranged__", False):
                continue
            setattr(mod, "eager_attention_forward", _wrap(fn))

            def put_back(mod: Any = mod, fn: Any = fn) -> None:
                setattr(mod, "eager_attention_forward", fn)
            restore.append(put_back)
        yield len(restore)
    finally:
        for undo in reversed(restore):
            undo()


@contextmanager
def module_ranges(model: torch.nn.Module) -> Iterator[dict[torch.nn.Module, str]]:
    """Open a profiler range around every classified module's forward (pre/post hooks),
    and around the attention kernels; yields the roles. Everything is removed after."""
    roles = classify(model)
    stack: list[Any] = []

    def enter(role: str) -> Callable[..., None]:
        name = range_name(role)

        def pre(_module: Any, _args: Any) -> None:
            rf = torch.profiler.record_function(name)
            rf.__enter__()  # type: ignore[no-untyped-call]  # unannotated in torch 2.13
            stack.append(rf)
        return pre

    def leave(_module: Any, _args: Any, _out: Any) -> None:
        if stack:
            stack.pop().__exit__(None, None, None)

    handles = []
    try:
        for module, role in roles.items():
            handles.append(module.register_forward_pre_hook(enter(role)))
            handles.append(module.register_forward_hook(leave))
        with kernel_ranges(model):
            yield roles
    finally:
        for handle in handles:
            handle.remove()
        while stack:  # a forward that raised left its ranges open
            stack.pop().__exit__(None, None, None)
