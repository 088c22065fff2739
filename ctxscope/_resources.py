"""Locate files under ``resources/``: inside an installed wheel or in a source checkout."""

from __future__ import annotations

from importlib import resources
from pathlib import Path


def resources_dir() -> Path:
    """Return the directory holding ctxscope's resources.

    The wheel ships ``resources/`` as ``ctxscope/resources``; an editable install or a
    plain ``PYTHONPATH=.`` checkout keeps it at the repository root, beside the package.
    """
    packaged = Path(str(resources.files("ctxscope"))) / "resources"
    if packaged.is_dir():
        return packaged
    return Path(__file__).resolve().parent.parent / "resources"


def resource_path(*parts: str) -> Path:
    """Path of one resource file, e.g. ``resource_path("presets", "gpt2.json")``."""
    return resources_dir().joinpath(*parts)


def desktop_dir() -> Path:
    """The freedesktop entry and AppStream metainfo: ``resources/desktop`` in a wheel,
    ``packaging/linux`` in a source checkout."""
    packaged = resources_dir() / "desktop"
    if packaged.is_dir():
        return packaged
    return Path(__file__).resolve().parent.parent / "packaging" / "linux"
