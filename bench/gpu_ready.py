"""Can this host run ctxscope from the source tree? The first step of bench/gpu_check.sh.

Prints the versions the check will run with, then imports every module of the core, the
CLI, the reports, the history and the remote runners (not the Qt app) and checks that the
installed packages meet what ctxscope and the carried wheels require. Any problem is one
line and exit 1, in seconds — not every later step failing on the same import.
Standard library only, bar ``packaging`` (which transformers itself requires).
"""

from __future__ import annotations

import importlib
import importlib.metadata as md
import pkgutil
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SHOWN = ("torch", "transformers", "huggingface-hub", "tokenizers", "safetensors", "accelerate", "numpy",
         "platformdirs", "nvidia-ml-py", "psutil")
SKIPPED = ("ctxscope.gui",)  # the Qt app: the host has no Qt, and the check never opens it


def version(name: str) -> str | None:
    try:
        return md.version(name)
    except md.PackageNotFoundError:
        return None


def unmet(site: Path | None) -> list[str]:
    """Requirements of ctxscope's core/CLI and of every carried distribution the installed set does not meet."""
    from packaging.requirements import Requirement

    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    # Not torch: the host's own (CUDA) build is the one to measure, whatever its version;
    # main() prints it beside the tested floor.
    wanted = [(Requirement(t), "ctxscope") for t in project["dependencies"]
              if Requirement(t).name.lower() not in ("pyside6-essentials", "pyqtgraph", "superqt", "torch")]
    if site is not None and site.is_dir():
        for dist in md.distributions(path=[str(site)]):
            wanted += [(Requirement(t), dist.metadata["Name"]) for t in dist.requires or []]
    problems = []
    for req, by in wanted:
        if req.marker is not None and not req.marker.evaluate({"extra": ""}):
            continue
        have = version(req.name)
        if have is None:
            problems.append(f"{req.name} missing (needed by {by})")
        elif not req.specifier.contains(have.split("+")[0], prereleases=True):
            problems.append(f"{req.name} {have} does not meet {req.specifier} (needed by {by})")
    return problems


def import_all() -> list[str]:
    import ctxscope

    failures = []
    for mod in pkgutil.walk_packages(ctxscope.__path__, "ctxscope."):
        if mod.name.startswith(SKIPPED):
            continue
        try:
            importlib.import_module(mod.name)
        except Exception as exc:  # noqa: BLE001 (each failure is reported, none stops the listing)
            failures.append(f"{mod.name}: {type(exc).__name__}: {exc}")
    return failures


def main() -> int:
    site = Path(sys.argv[1]) if len(sys.argv) > 1 else None
    versions = " ".join(f"{n} {version(n) or '-'}" for n in SHOWN)
    print(f"python {sys.version.split()[0]} {versions}")
    try:
        import torch

        print(f"torch CUDA {torch.version.cuda}, device {'cuda' if torch.cuda.is_available() else 'cpu (a rehearsal)'}")
    except Exception as exc:  # noqa: BLE001
        print(f"gpu_ready: torch does not import: {type(exc).__name__}: {exc}")
        return 1
    problems = unmet(site)
    failures = import_all()
    if failures:
        print(f"gpu_ready: ctxscope cannot run here: {failures[0]}"
              + (f" (and {len(failures) - 1} more modules)" if len(failures) > 1 else ""))
        if problems:
            print(f"gpu_ready: unmet requirements: {'; '.join(problems)}")
        return 1
    if problems:
        print(f"gpu_ready: unmet requirements: {'; '.join(problems)}")
        return 1
    print("gpu_ready: ctxscope imports and every requirement is met")
    return 0


if __name__ == "__main__":
    sys.exit(main())
