"""What differs between the transformers releases ctxscope supports, detected once.

transformers 5.24 renamed the model call's ``past_key_values`` argument (and the output
field of the same name) to ``cache``; the old name warns until its removal in 5.40.
Pinning around it would break next month, so the name is read off the model itself:
the installed release, and remote-code models that lag behind it, each get the name
their ``forward`` declares.
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
from typing import Any

NEW_CACHE_NAME = "cache"
OLD_CACHE_NAME = "past_key_values"


@functools.lru_cache(maxsize=64)
def _cache_name_of(forward_owner: type) -> str:
    try:
        params = inspect.signature(getattr(forward_owner, "forward")).parameters  # any class with a forward
    except (TypeError, ValueError):  # a builtin or C-level forward: assume the current name
        return NEW_CACHE_NAME
    if NEW_CACHE_NAME in params:
        return NEW_CACHE_NAME
    return OLD_CACHE_NAME


def cache_argument(model: Any) -> str:
    """The keyword ``model``'s forward takes its KV cache by: ``"cache"`` (transformers
    ≥ 5.24) or ``"past_key_values"`` (earlier releases, remote code written for them)."""
    owner: type = type(model)  # the cache key: mypy does not see a type[Any] as Hashable
    return _cache_name_of(owner)


def cache_kwargs(model: Any, cache: Any) -> dict[str, Any]:
    """``{name: cache}`` for a model call, under the name the model expects."""
    return {cache_argument(model): cache}


def output_cache(output: Any) -> Any:
    """The cache a model call returned (``None`` when it returned none), read without
    touching the deprecated attribute (which logs a warning on transformers ≥ 5.24)."""
    if output is None:
        return None
    if dataclasses.is_dataclass(output):
        names = {f.name for f in dataclasses.fields(output)}
        for name in (NEW_CACHE_NAME, OLD_CACHE_NAME):
            if name in names:
                return getattr(output, name)
        return None
    return getattr(output, OLD_CACHE_NAME, None)
