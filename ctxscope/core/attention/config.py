"""What an attention capture records (plain data, no torch: the UI builds it)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class CaptureConfig:
    """What to record. ``layers``: indices (negative from the end), empty = all.
    ``profile_rows``: query positions whose full rows are kept (negative from the end).
    ``span``: a marked token range [start, end) whose received mass is measured."""

    tiles: int = 256
    layers: tuple[int, ...] = ()
    profile_rows: tuple[int, ...] = (-1,)
    sink_tokens: int = 4
    local_window: int = 128
    span: tuple[int, int] | None = None
    budget_elements: int | None = None  # chunk size in score elements; None: sized to the model
