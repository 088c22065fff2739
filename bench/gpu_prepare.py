"""Prepare the wheels the lent GPU host needs to run ctxscope from the source tree.

The host (bench/gpu-host.txt) has no network and a fixed stack: no platformdirs, and a
transformers below ctxscope's floor. This downloads, for that host's Python and platform,
the wheel of every package ctxscope's core and CLI need that the host lacks or has at a
version they do not accept — and the transformers stack at the versions the suite passed
with (resources/constraints.txt) — then every requirement of those wheels that the host
cannot meet, recursively. Nothing is installed here.

    python bench/gpu_prepare.py                      # → .whl/ for CPython 3.12, manylinux x86-64
    python bench/gpu_prepare.py --python-version 3.11 --dest /tmp/w   # the CPU rehearsal's

bench/gpu_check.sh installs the folder into a target directory first when it is present.
The wheels and the tracked tree travel together (the device tool's limit: 64 MiB a call);
this fails when they would not fit.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tomllib
import zipfile
from email.parser import Parser
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

ROOT = Path(__file__).resolve().parent.parent
#: The GUI's packages: the core and the CLI never import them (an import-linter contract).
GUI_ONLY = {"pyside6-essentials", "pyqtgraph", "superqt"}
#: Carried at the tested version whenever the host's differs: the library ctxscope measures
#: through, and the three it reads checkpoints and tokenizers with.
TESTED_STACK = ("transformers", "huggingface-hub", "tokenizers", "safetensors")
PLATFORMS = ("manylinux_2_28_x86_64", "manylinux_2_27_x86_64", "manylinux_2_17_x86_64", "manylinux2014_x86_64",
             "manylinux1_x86_64", "linux_x86_64")
LIMIT = 64 * 1024 * 1024


def read_pins(path: Path) -> dict[str, str | None]:
    """NAME==VERSION lines (or a bare NAME: there, version unknown) → {name: version}."""
    pins: dict[str, str | None] = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        name, _, version = line.partition("==")
        pins[canonicalize_name(name)] = version.strip() or None
    return pins


def core_requirements() -> list[Requirement]:
    """pyproject's runtime dependencies that the core or the CLI import (not the GUI's,
    not torch: the host's own CUDA build is the one to measure)."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    reqs = [Requirement(text) for text in project["dependencies"]]
    return [r for r in reqs if canonicalize_name(r.name) not in GUI_ONLY | {"torch"}]


def wheel_requirements(wheel: Path, env: dict[str, str]) -> list[Requirement]:
    """The Requires-Dist of a wheel that apply on the host (no extras)."""
    with zipfile.ZipFile(wheel) as zf:
        name = next(n for n in zf.namelist() if n.endswith(".dist-info/METADATA"))
        meta = Parser().parsestr(zf.read(name).decode("utf-8"))
    out = []
    for text in meta.get_all("Requires-Dist") or []:
        req = Requirement(text)
        if req.marker is not None and not req.marker.evaluate({**env, "extra": ""}):
            continue
        out.append(req)
    return out


def download(name: str, version: str, dest: Path, python_version: str) -> Path:
    before = set(dest.glob("*.whl"))
    cmd = [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--only-binary=:all:",
           "--python-version", python_version, "--implementation", "cp", "--dest", str(dest)]
    for platform in PLATFORMS:
        cmd += ["--platform", platform]
    subprocess.run(cmd + [f"{name}=={version}"], check=True)
    key = canonicalize_name(name)
    found = [w for w in dest.glob("*.whl") if canonicalize_name(w.name.split("-")[0]) == key
             and Version(w.name.split("-")[1]) == Version(version)]
    if not found:
        raise SystemExit(f"gpu_prepare: pip downloaded no wheel of {name}=={version} (new: {set(dest.glob('*.whl')) - before})")
    return found[0]


def tree_bytes() -> int:
    """Bytes of the files that travel with every device call (tracked + untracked, not ignored)."""
    files = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=ROOT,
                           check=True, capture_output=True).stdout.split(b"\0")
    return sum((ROOT / f.decode()).stat().st_size for f in files if f and (ROOT / f.decode()).is_file())


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--dest", type=Path, default=ROOT / ".whl")
    ap.add_argument("--python-version", default="3.12", help="the host's Python (default 3.12)")
    ap.add_argument("--host", type=Path, default=ROOT / "bench" / "gpu-host.txt")
    args = ap.parse_args(argv)
    host = read_pins(args.host)
    tested = read_pins(ROOT / "resources" / "constraints.txt")
    env = {"python_version": args.python_version, "python_full_version": f"{args.python_version}.0", "sys_platform": "linux",
           "platform_system": "Linux", "platform_machine": "x86_64", "os_name": "posix",
           "implementation_name": "cpython", "platform_python_implementation": "CPython"}
    args.dest.mkdir(parents=True, exist_ok=True)
    carried: dict[str, tuple[str, str]] = {}  # name → (version, why)
    unverified: list[str] = []
    queue: list[tuple[Requirement, str]] = [(r, "ctxscope") for r in core_requirements()]
    queue += [(Requirement(name), "tested stack") for name in TESTED_STACK]
    while queue:
        req, by = queue.pop(0)
        key = canonicalize_name(req.name)
        if key in carried:
            continue
        there = host.get(key, "absent")
        if by == "tested stack":
            if there == tested.get(key):
                continue
            why = f"tested {tested.get(key)}, host {there or 'version unread'}"
        elif there == "absent":
            why = f"needed by {by}, not on the host"
        elif there is None:
            unverified.append(key)
            continue
        elif not req.specifier.contains(there, prereleases=True):
            why = f"{by} needs {req.specifier}, host has {there}"
        else:
            continue
        version = tested.get(key)
        if version is None or not req.specifier.contains(version, prereleases=True):
            raise SystemExit(f"gpu_prepare: {req} ({why}) has no accepted version in resources/constraints.txt")
        wheel = download(req.name, version, args.dest, args.python_version)
        carried[key] = (version, why)
        queue += [(r, f"{req.name} {version}") for r in wheel_requirements(wheel, env)]
    keep = {canonicalize_name(w.name.split("-")[0]): w for w in args.dest.glob("*.whl")
            if canonicalize_name(w.name.split("-")[0]) in carried
            and Version(w.name.split("-")[1]) == Version(carried[canonicalize_name(w.name.split("-")[0])][0])}
    for stale in set(args.dest.glob("*.whl")) - set(keep.values()):
        stale.unlink()  # one version of each: two would stop the whole install there
    total = 0
    for key, wheel in sorted(keep.items()):
        size = wheel.stat().st_size
        total += size
        print(f"  {wheel.name:<60} {size / 2**20:6.2f} MiB  {carried[key][1]}")
    if unverified:  # gpu_check.sh checks these on the host itself, in its first seconds
        print(f"  on the host, version not read (assumed to satisfy): {', '.join(sorted(set(unverified)))}")
    tree = tree_bytes() if args.dest.resolve().is_relative_to(ROOT) else 0
    print(f"gpu_prepare: {len(keep)} wheels, {total / 2**20:.1f} MiB in {args.dest}"
          + (f"; with the tree ({tree / 2**20:.1f} MiB) {(total + tree) / 2**20:.1f} MiB of the 64 MiB a device call carries"
             if tree else ""))
    if tree and total + tree > LIMIT:
        print("gpu_prepare: too large to travel with the tree", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
