"""Architecture presets: real published ``config.json`` files shipped in resources/presets."""

from __future__ import annotations

import json
from pathlib import Path

from ctxscope._resources import resource_path
from ctxscope.core.errors import BadInputError


def preset_names() -> list[str]:
    """Names accepted after ``preset:``, sorted."""
    return sorted(p.stem for p in resource_path("presets").glob("*.json"))


def preset_path(name: str) -> Path:
    """The config file of one preset; a clear error lists the valid names."""
    path = resource_path("presets", f"{name}.json")
    if not name or "/" in name or "\\" in name or not path.is_file():
        raise BadInputError(f"unknown preset {name!r}: choose one of {', '.join(preset_names())}")
    return path


def preset_origin(name: str) -> str:
    """The Hub repository the preset's architecture was published as."""
    return str(json.loads(preset_path(name).read_text(encoding="utf-8")).get("_name_or_path", ""))
