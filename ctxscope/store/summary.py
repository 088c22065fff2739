"""One line of the run list (``ctxscope runs list``, the app's History tab): what a run
is, read from its row and its header without loading its points."""

from __future__ import annotations

import json
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class RunSummary:
    """One line of ``ctxscope runs list``: points recorded (ok among them) of planned."""

    id: str
    created: str
    status: str
    model_source: str
    architecture: str
    device: str
    dtype: str
    attn: str
    batch_size: int
    points_ok: int
    points_total: int
    points_planned: int
    host: str | None = None  # where it was measured, when not here (an SSH host, a Ray node)
    quality: str = ""  # the quality passes asked for ("loss, needle"), or "" for none
    attention: str = ""  # the attention capture ("64 tiles"), or "" for none

    def points_text(self) -> str:
        """'4/6' (points recorded of planned), with how many were ok when not all."""
        ok = f" ({self.points_ok} ok)" if self.points_ok != self.points_total else ""
        return f"{self.points_total}/{self.points_planned}{ok}"


def list_facts(header_json: str) -> tuple[int, str | None, str, str]:
    """What a list line tells of a run beyond its columns: points it set out to measure
    (lengths × modes), its host, its quality passes and its attention capture."""
    try:
        header = json.loads(header_json)
        settings = header["settings"]
        planned = len(settings["lengths"]) * len(settings["modes"])
    except (ValueError, KeyError, TypeError):
        return 0, None, "", ""
    env = header.get("environment")
    host = env.get("host") if isinstance(env, dict) and isinstance(env.get("host"), str) else None
    quality = settings.get("quality")
    said = ""
    if isinstance(quality, dict):
        said = "not applicable" if quality.get("note") else ", ".join(str(k) for k in quality.get("kinds") or ())
    attention = settings.get("attention")
    tiles = attention.get("tiles") if isinstance(attention, dict) else None
    maps = f"{tiles} tiles" if isinstance(tiles, int) else "yes" if attention else ""
    return planned, host, said, maps
