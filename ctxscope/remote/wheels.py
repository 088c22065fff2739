"""Wheels of what runs here, for a remote host or a Ray node that lacks them (ctxscope
is not on PyPI, and GPU hosts often have no index at all).

:func:`ctxscope_wheel` packs the running ctxscope — the files Python imports it from,
plus its resources — into a wheel with the layout the project's build gives
(``ctxscope/``, ``ctxscope/resources``, ``ctxscope/resources/desktop``); it works the
same from an installed wheel, an editable install or a source checkout, and needs no
build tool and no network. :func:`local_wheel` packs another locally installed
pure-Python distribution (``platformdirs``) the same way. Entries are sorted and dated
1980-01-01, so the same files give the same bytes: the wheel's hash names its version.
"""

from __future__ import annotations

import base64
import hashlib
import io
import os
import tempfile
import zipfile
from collections.abc import Iterator
from importlib import metadata
from pathlib import Path

import ctxscope

_DATE = (1980, 1, 1, 0, 0, 0)
_SKIP_DIRS = {"__pycache__"}
_SKIP_SUFFIXES = (".pyc", ".pyo")
_COMPILED = (".so", ".pyd", ".dylib", ".dll")


def cache_dir() -> Path:
    """Where built wheels are kept for this user (rebuilt whenever the files change)."""
    path = Path(tempfile.gettempdir()) / f"ctxscope-wheels-{os.getuid() if hasattr(os, 'getuid') else 'user'}"
    path.mkdir(mode=0o700, exist_ok=True)
    return path


def _walk(root: Path, prefix: str) -> Iterator[tuple[str, Path]]:
    for folder, dirs, files in os.walk(root):
        dirs[:] = sorted(d for d in dirs if d not in _SKIP_DIRS and not d.startswith("."))
        for name in sorted(files):
            if not name.endswith(_SKIP_SUFFIXES):
                path = Path(folder) / name
                yield f"{prefix}/{path.relative_to(root).as_posix()}", path


def _ctxscope_files() -> list[tuple[str, Path]]:
    from ctxscope._resources import desktop_dir, resources_dir

    package = Path(ctxscope.__file__).resolve().parent
    files = list(_walk(package, "ctxscope"))
    if not (package / "resources").is_dir():  # a checkout: resources sit beside the package, as the build maps them
        files += _walk(resources_dir(), "ctxscope/resources")
        files += _walk(desktop_dir(), "ctxscope/resources/desktop")
    return sorted(files)


def _metadata(name: str, version: str) -> str:
    try:
        installed = metadata.distribution(name)
        if installed.version == version and (text := installed.read_text("METADATA")):
            return text
    except metadata.PackageNotFoundError:
        pass
    return f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n"


def _build(path: Path, name: str, version: str, files: list[tuple[str, Path]], extra: dict[str, str]) -> None:
    """Write the wheel: the files, then the dist-info (WHEEL, METADATA, extras, RECORD)."""
    info = f"{name.replace('-', '_')}-{version}.dist-info"
    wheel = "Wheel-Version: 1.0\nGenerator: ctxscope\nRoot-Is-Purelib: true\nTag: py3-none-any\n"
    members = [(arc, src.read_bytes()) for arc, src in files]
    members += [(f"{info}/METADATA", _metadata(name, version).encode()), (f"{info}/WHEEL", wheel.encode())]
    members += [(f"{info}/{key}", text.encode()) for key, text in sorted(extra.items())]
    record = "".join(f"{arc},sha256={base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b'=').decode()},"
                     f"{len(data)}\n" for arc, data in members) + f"{info}/RECORD,,\n"
    members.append((f"{info}/RECORD", record.encode()))
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for arc, data in members:
            entry = zipfile.ZipInfo(arc, date_time=_DATE)
            entry.external_attr = 0o644 << 16
            entry.compress_type = zipfile.ZIP_DEFLATED
            zf.writestr(entry, data)
    part = path.with_name(f".{path.name}.{os.getpid()}.part")
    part.write_bytes(buffer.getvalue())
    part.replace(path)  # atomic: another process building the same wheel writes the same bytes


def _cached(name: str, version: str, files: list[tuple[str, Path]], extra: dict[str, str]) -> Path:
    # Keyed by the files' names, sizes and modification times: unchanged files are not packed again.
    key = hashlib.sha256(repr([(arc, (st := src.stat()).st_size, st.st_mtime_ns) for arc, src in files]).encode())
    path = cache_dir() / key.hexdigest()[:16] / f"{name.replace('-', '_')}-{version}-py3-none-any.whl"
    if not path.is_file():
        path.parent.mkdir(exist_ok=True)
        _build(path, name, version, files, extra)
    return path


def ctxscope_wheel() -> Path:
    """This ctxscope as a wheel (built once per set of files, then reused)."""
    scripts = "[console_scripts]\nctxscope = ctxscope.cli:main\n"
    return _cached("ctxscope", ctxscope.__version__, _ctxscope_files(), {"entry_points.txt": scripts})


def local_wheel(name: str) -> Path | None:
    """The locally installed distribution ``name`` as a wheel, or ``None`` when it is not
    installed, not pure Python (compiled files are this machine's, not the host's), or
    does not list its files."""
    try:
        dist = metadata.distribution(name)
    except metadata.PackageNotFoundError:
        return None
    base = Path(str(dist.locate_file("")))
    files = []
    for item in dist.files or ():
        parts = Path(str(item)).parts
        if not parts or parts[0] == ".." or _SKIP_DIRS & set(parts) or str(item).endswith(_SKIP_SUFFIXES):
            continue  # scripts outside site-packages, byte code
        if str(item).endswith(_COMPILED):
            return None
        if ".dist-info" not in parts[0]:
            files.append((Path(str(item)).as_posix(), base / str(item)))
    if not files or not all(src.is_file() for _, src in files):
        return None
    return _cached(dist.metadata["Name"], dist.version, sorted(files), {})


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()
