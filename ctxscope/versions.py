"""Installed dependency versions against what ctxscope declares and was last tested with.

Two sources of truth, both in the repository: the declared ranges in ``pyproject.toml``
(read from the installed package's metadata, or from the checkout when run from
source) and ``resources/constraints.txt``, the exact versions the test suite last
passed with (CI tests both the newest releases and that set). ``ctxscope doctor``
shows the comparison, so "it broke after an upgrade" has a name.
"""

from __future__ import annotations

import importlib.metadata as metadata
import re
from dataclasses import dataclass
from pathlib import Path

from packaging.requirements import InvalidRequirement, Requirement
from packaging.version import InvalidVersion, Version

from ctxscope._resources import resource_path

#: Without these nothing measures; the rest degrade one feature each.
ESSENTIAL = frozenset({"torch", "transformers", "numpy"})


@dataclass(frozen=True, slots=True)
class DependencyStatus:
    """One dependency: ``verdict`` is ``ok``, ``newer`` (inside the declared range but
    newer than the last tested release), ``outside`` (violates the declared range) or
    ``missing``."""

    name: str
    installed: str | None
    declared: str
    tested: str | None
    verdict: str

    @property
    def essential(self) -> bool:
        return _norm(self.name) in ESSENTIAL


def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def declared_requirements() -> list[Requirement]:
    """The runtime requirements of ctxscope (extras excluded)."""
    try:
        lines = metadata.requires("ctxscope") or []
    except metadata.PackageNotFoundError:  # run from a source tree (PYTHONPATH=.)
        lines = _from_pyproject()
    out = []
    for line in lines:
        try:
            req = Requirement(line)
        except InvalidRequirement:
            continue
        if req.marker is None or req.marker.evaluate({"extra": ""}):
            out.append(req)
    return out


def _from_pyproject() -> list[str]:
    path = Path(__file__).resolve().parent.parent / "pyproject.toml"
    try:
        import tomllib
    except ImportError:  # Python 3.10: no TOML reader in the standard library
        return []
    try:
        return list(tomllib.loads(path.read_text(encoding="utf-8"))["project"]["dependencies"])
    except (OSError, KeyError, ValueError):
        return []


def tested_versions(path: Path | None = None) -> dict[str, str]:
    """``name → version`` from the constraints file (``name==version`` lines)."""
    path = path or resource_path("constraints.txt")
    out: dict[str, str] = {}
    try:
        text = path.read_text(encoding="utf-8")
    except OSError:
        return out
    for line in text.splitlines():
        line = line.split("#", 1)[0].strip()
        if "==" in line:
            name, version = line.split("==", 1)
            out[_norm(name)] = version.strip()
    return out


def _installed(name: str) -> str | None:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def _release(text: str) -> Version | None:
    try:
        return Version(Version(text).base_version)  # "2.13.0+cpu" is 2.13.0 for our purposes
    except InvalidVersion:
        return None


def dependency_report(constraints: Path | None = None) -> list[DependencyStatus]:
    """Every declared runtime dependency, with its installed, declared and tested versions."""
    tested = tested_versions(constraints)
    report = []
    for req in declared_requirements():
        installed = _installed(req.name)
        last = tested.get(_norm(req.name))
        version = _release(installed) if installed else None
        if installed is None:
            verdict = "missing"
        elif version is not None and req.specifier and not req.specifier.contains(version, prereleases=True):
            verdict = "outside"
        elif version is not None and last and (tested_version := _release(last)) and version > tested_version:
            verdict = "newer"
        else:
            verdict = "ok"
        report.append(DependencyStatus(req.name, installed, str(req.specifier) or "any", last, verdict))
    return report
