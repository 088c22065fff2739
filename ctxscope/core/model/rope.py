"""Beyond the trained length: RoPE scaling, the context-extension methods transformers
builds in (``--rope-scaling linear:F | dynamic:F | yarn:F``), set on the config before
the weights load.

transformers 5 spells it ``config.rope_parameters`` (``rope_scaling`` in a config file
or constructor is converted to it): a dict with ``rope_type``, ``rope_theta``,
``factor`` and, for YaRN, ``original_max_position_embeddings``. What each does, as
``transformers.modeling_rope_utils`` computes it:

- ``linear`` (position interpolation): every inverse frequency divided by F, at every
  length — short contexts change too;
- ``dynamic`` (dynamic NTK): the base grows with the sequence once it is longer than
  ``max_position_embeddings``; below that the model is unchanged;
- ``yarn``: frequencies interpolated by band (high ones kept, low ones divided by F)
  and the attention scaled by ``0.1·ln F + 1``; the pretraining length is
  ``original_max_position_embeddings`` (the config's ``max_position_embeddings``).

``max_position_embeddings`` is left as the checkpoint states it: what the model was
trained to (the *claimed* length, and the one ``dynamic`` scales from); lengths beyond
it still need ``--allow-beyond-max``, with and without scaling alike.
"""

from __future__ import annotations

import math
from typing import Any

from ctxscope.core.errors import BadInputError

METHODS = ("linear", "dynamic", "yarn")
_STATE_SPACE = ("mamba", "mamba2", "falcon_mamba")
_LEARNED = ("gpt2", "bert", "opt", "gpt_bigcode", "roberta", "distilbert", "xlm-roberta", "gpt_neo", "biogpt")


def parse_rope_scaling(text: str | None) -> tuple[str, float] | None:
    """``"yarn:4"`` → ``("yarn", 4.0)``; ``None``, ``""`` or ``"none"`` → ``None``."""
    if text is None or text.strip().lower() in ("", "none"):
        return None
    method, _, factor = text.strip().lower().partition(":")
    try:
        value = float(factor)
    except ValueError:
        value = math.nan
    if method not in METHODS or not (math.isfinite(value) and value > 1):
        raise BadInputError(f"--rope-scaling {text!r}: use linear:F, dynamic:F or yarn:F with a factor F > 1 "
                            "(e.g. yarn:4), or none")
    return method, value


def canonical(text: str | None) -> str | None:
    """One spelling per method and factor (``"YaRN:4.0"`` → ``"yarn:4"``), ``None`` for none."""
    parsed = parse_rope_scaling(text)
    return None if parsed is None else f"{parsed[0]}:{parsed[1]:g}"


def rope_problem(config: Any) -> str | None:
    """Why this config's position scheme has nothing to scale (one line), or ``None``."""
    kind = str(getattr(config, "model_type", "") or "this model")
    params = getattr(config, "rope_parameters", None)
    if isinstance(params, dict) and params:
        if any(isinstance(v, dict) for v in params.values()):
            return (f"{kind} has a rotary embedding per layer type ({', '.join(k for k, v in params.items() if isinstance(v, dict))}); "
                    "scaling them all alike is not what its authors do, so --rope-scaling refuses it")
        rope_type = str(params.get("rope_type") or params.get("type") or "default")
        if rope_type != "default":
            factor = params.get("factor")
            return (f"{kind} already uses {rope_type} RoPE scaling" + (f" (factor {factor:g})" if isinstance(
                factor, (int, float)) else "") + ": --rope-scaling would replace the extension it was trained with")
        return None
    if kind in _STATE_SPACE:
        return f"{kind} is a state-space model: it has no position embedding to scale"
    absolute = kind in _LEARNED or getattr(config, "position_embedding_type", None) == "absolute"
    learned = getattr(config, "n_positions", None) or (getattr(config, "max_position_embeddings", None)
                                                       if absolute else None)
    if learned or absolute:
        size = f" of {learned:,} positions" if isinstance(learned, int) else ""
        return f"{kind} learns a position table{size}: it has no rotary embedding to scale"
    return f"{kind}'s config has no rotary embedding (rope_parameters): nothing to scale"


def learns_positions(config: Any) -> bool:
    """Whether ``config``'s model looks up its positions in a learned table (GPT-2, BERT,
    OPT …), by its config alone (the loaded model's table is the authority)."""
    from ctxscope.core.model.modelinfo import text_config

    kind = str(getattr(text_config(config), "model_type", "") or getattr(config, "model_type", ""))
    # Not by ``n_positions``: GPT-J and CodeGen have one and are rotary.
    return kind in _LEARNED or getattr(config, "position_embedding_type", None) == "absolute"


def apply_rope_scaling(config: Any, text: str | None, source: str) -> str | None:
    """Set ``text``'s RoPE scaling on ``config`` in place; return its canonical name.

    Raises
    ------
    BadInputError
        A malformed request, or a model whose position scheme has no such option.
    """
    parsed = parse_rope_scaling(text)
    if parsed is None:
        return None
    problem = rope_problem(config)
    if problem is not None:
        raise BadInputError(f"--rope-scaling {text}: {source}: {problem}")
    method, factor = parsed
    params = dict(config.rope_parameters)
    params.update(rope_type=method, factor=factor)
    if method == "yarn":
        params["original_max_position_embeddings"] = int(config.max_position_embeddings)
    config.rope_parameters = params
    return f"{method}:{factor:g}"
