"""Where the time goes: a profiled pass per point (never the timed one) that splits a
forward pass into components (attention kernel, q/k/v/o projections, MLP / experts,
norms, embeddings + LM head, recurrent mixers, other), and the length where attention
overtakes the linear layers, measured and predicted.

``roles`` says which module plays which part and opens profiler ranges around them;
``attribute`` turns the profiler's events into exclusive times per component;
``profiled`` runs the pass; ``crossover`` finds the crossover. Only ``crossover`` is
free of torch (reports use it).
"""

from __future__ import annotations

#: The components, in the order charts stack them (bottom first).
COMPONENTS = ("attention", "projections", "mlp", "recurrent", "norms", "embeddings_head", "other")
COMPONENT_LABELS = {"attention": "attention kernel", "projections": "q/k/v/o projections", "mlp": "MLP / experts",
                    "recurrent": "recurrent mixers", "norms": "norms", "embeddings_head": "embeddings + LM head",
                    "other": "other"}
#: Components that grow linearly in L (the "linear layers" of the crossover).
LINEAR = ("projections", "mlp", "recurrent")
