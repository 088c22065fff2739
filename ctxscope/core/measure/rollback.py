"""Put a cache back to depth L after each timed decode step, for every kind of layer.

A decode point times single-token steps that must each see exactly L cached tokens. The
cache's own ``crop`` cannot do that for every architecture: a sliding-window layer can be
cropped only if it recorded its past before the prefill, and a state-space, linear-attention
or short-convolution layer cannot be cropped at all (its recurrent state is overwritten in
place by each step; transformers raises "`crop` was called, but the current layer does not
track past states").

So the rollback is a snapshot, taken once at depth L:

- every layer's (and the cache's) attributes, shallowly: key/value updates *rebind*
  ``keys`` / ``values`` to new tensors (``torch.cat``) and move counters, so restoring the
  old bindings restores the layer exactly, with no copy of the KV cache. Containers (the
  per-state dicts) are copied, since a step rebinds their items;
- a copy of every recurrent and convolution state tensor (and every other small tensor a
  layer holds), which steps update *in place*
  (``copy_``); restoring copies it back into the same tensor (same address, as a compiled
  or captured graph expects).

Static-cache layers write each step into slot L of a preallocated buffer and keep the
write position in a 0-d tensor counted up in place: copying it back is exactly their
``crop``. Every tensor a layer holds besides its key/value buffers is copied the same way. What the
snapshot holds aside (the state copies) is measurement apparatus, allocated before the
memory pass: on a GPU it is part of that pass's "other" bytes.
"""

from __future__ import annotations

from typing import Any

import torch

_STATE_DICTS = ("conv_states", "recurrent_states")
#: Key/value buffers: a dynamic layer rebinds them at each step (restoring the binding is
#: enough); a static layer writes slot L in place, which its restored position makes stale.
#: Copying them would double the cache. Every other tensor of a layer is copied back.
#: A quantized layer (``QuantizedCache``) rebinds its quantized past at every step too
#: (fp8 concatenates; the group-wise backends re-quantize when the residual window flushes),
#: and never writes it in place: restoring the binding restores it bit for bit.
_KV_BUFFERS = ("keys", "values", "_quantized_keys", "_quantized_values")


def _shallow(obj: Any) -> dict[str, Any]:
    return {k: (dict(v) if isinstance(v, dict) else list(v) if isinstance(v, list) else v)
            for k, v in vars(obj).items() if k != "layers"}


class CacheRollback:
    """Snapshot of a cache at depth L; calling it restores that state."""

    def __init__(self, cache: Any) -> None:
        self.cache = cache
        self.layers = list(getattr(cache, "layers", None) or ())
        self._attrs = [_shallow(layer) for layer in self.layers]
        self._cache_attrs = _shallow(cache)
        self._states: list[tuple[torch.Tensor, torch.Tensor]] = []
        for owner in [*self.layers, cache]:
            for name, value in vars(owner).items():
                if isinstance(value, torch.Tensor) and name not in _KV_BUFFERS:
                    self._states.append((value, value.clone()))  # counters such as a static layer's position
            for name in _STATE_DICTS:
                states = getattr(owner, name, None)
                if isinstance(states, dict):
                    self._states += [(t, t.clone()) for t in states.values() if isinstance(t, torch.Tensor)]

    @property
    def held_bytes(self) -> int:
        """Bytes of the state copies the snapshot keeps."""
        return sum(int(copy.numel() * copy.element_size()) for _, copy in self._states)

    def __call__(self) -> None:
        for layer, attrs in zip(self.layers, self._attrs):
            for k in set(vars(layer)) - set(attrs):
                delattr(layer, k)  # an attribute a step created (lazily initialised state)
            for k, v in attrs.items():
                setattr(layer, k, dict(v) if isinstance(v, dict) else list(v) if isinstance(v, list) else v)
        for k, v in self._cache_attrs.items():
            setattr(self.cache, k, dict(v) if isinstance(v, dict) else list(v) if isinstance(v, list) else v)
        for live, copy in self._states:
            live.copy_(copy)


def attention_depth(cache: Any) -> int | None:
    """Tokens held by the cache's attention layers, or ``None`` when it has none (a pure
    state-space model's cache tracks no sequence length: transformers raises when asked)."""
    try:
        return int(cache.get_seq_length())
    except ValueError:
        return None
