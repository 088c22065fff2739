"""Profiler events → exclusive time per component.

Each event's *self* time (its time minus its children's) goes to the innermost
``ctxscope::`` range around it; the self times of a tree add up to its root's time, so
the components of one profiled call add up to that call's range by construction and
nested ranges (a norm inside an attention module) are never counted twice. What runs
under no component range (rotary, masks, cache updates, the layers' glue, Python) is
"other". On a GPU the same walk sums each op's *device* self time (its kernels, through
CUPTI's correlation of launch and kernel): unverified here, no GPU was lent.
"""

from __future__ import annotations

import statistics
from collections.abc import Iterable, Sequence
from typing import Any, Protocol

from ctxscope.core.breakdown import COMPONENTS
from ctxscope.core.breakdown.roles import PREFIX, ROOT


class Event(Protocol):
    """The part of ``torch.autograd.profiler_util.FunctionEvent`` the walk reads (µs)."""

    name: str
    cpu_children: Sequence[Any]
    self_cpu_time_total: float
    self_device_time_total: float
    cpu_parent: Any


def _walk(event: Event, role: str, out: dict[str, float], device: bool) -> None:
    name = event.name
    if name.startswith(PREFIX) and name != ROOT:
        role = name[len(PREFIX):]
        if role not in out:
            role = "other"  # a range of a newer ctxscope's
    out[role] += float(event.self_device_time_total if device else event.self_cpu_time_total)
    for child in event.cpu_children:
        _walk(child, role, out, device)


def attribute(events: Iterable[Event], *, device: bool = False) -> list[dict[str, float]]:
    """Per profiled call (each a ``ctxscope::forward`` range, in the order they ran), the
    microseconds of each component (:data:`~ctxscope.core.breakdown.COMPONENTS`).

    ``device``: sum kernel (device) time instead of CPU time."""
    roots = [e for e in events if e.name == ROOT and (e.cpu_parent is None or e.cpu_parent.name != ROOT)]
    out = []
    for root in roots:
        split = dict.fromkeys(COMPONENTS, 0.0)
        _walk(root, "other", split, device)
        out.append(split)
    return out


def median_split(splits: Sequence[dict[str, float]]) -> dict[str, float]:
    """The component-wise median of several calls' splits, in the same unit: on a busy
    CPU one op now and then waits milliseconds for a descheduled thread, and a mean (or
    a single call) would hand that wait to whichever component it hit."""
    if not splits:
        return dict.fromkeys(COMPONENTS, 0.0)
    return {k: statistics.median(s[k] for s in splits) for k in COMPONENTS}
