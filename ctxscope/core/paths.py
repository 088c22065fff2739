"""Where ctxscope keeps its data: ``CTXSCOPE_HOME`` or the platform's user data dir.

Nothing here raises when the folder cannot be made: a read-only home must not stop
``doctor``, ``--help`` or a sweep to ``--out``. Whoever writes into the folder meets the
problem there, and :func:`data_dir_problem` says it in one line."""

from __future__ import annotations

import os
import shutil
from pathlib import Path



def _user_data_dir() -> Path:
    """The platform's per-user data folder for ctxscope. platformdirs knows every platform's
    rule; where it is missing (a headless GPU host with a fixed package set) the XDG rule,
    which is what platformdirs itself answers on Linux."""
    try:
        import platformdirs
    except ImportError:
        base = os.environ.get("XDG_DATA_HOME", "").strip()
        root = Path(base) if base and Path(base).is_absolute() else Path.home() / ".local" / "share"
        return root / "ctxscope"
    return Path(platformdirs.user_data_dir("ctxscope", appauthor=False))


def data_dir_path() -> Path:
    """The data directory's path, without touching the disk."""
    override = os.environ.get("CTXSCOPE_HOME")
    return Path(override).expanduser() if override else _user_data_dir()


def data_dir() -> Path:
    """The data directory, created on demand where possible; ``CTXSCOPE_HOME`` overrides
    the default. Never raises: see :func:`data_dir_problem` for why it may be unusable."""
    path = data_dir_path()
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError:
        pass  # reported by data_dir_problem() and by whoever tries to write there
    return path


def database_path() -> Path:
    """The SQLite run history."""
    return data_dir() / "runs.sqlite3"


def nearest_existing(path: Path) -> Path:
    """``path`` or its closest ancestor that exists (for free-space and permission checks)."""
    path = path.absolute()
    while not path.exists() and path.parent != path:
        path = path.parent
    return path


def free_bytes(path: Path) -> int | None:
    """Free bytes on the filesystem holding ``path`` (or its nearest existing ancestor)."""
    try:
        return shutil.disk_usage(nearest_existing(path)).free
    except OSError:
        return None


def fmt_free(path: Path) -> str:
    """'12.0 KiB free on /mnt' — the free space, for one-line messages."""
    free = free_bytes(path)
    if free is None:
        return "free space unknown"
    size = float(free)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if size < 1024 or unit == "TiB":
            text = f"{size:.0f} B" if unit == "B" else f"{size:.1f} {unit}"
            return f"{text} free on {nearest_existing(path)}"
        size /= 1024
    raise AssertionError("unreachable")


def data_dir_problem(path: Path | None = None) -> str | None:
    """Why the data directory cannot hold new runs, in one line, or ``None``."""
    path = path or data_dir()
    if not path.is_dir():
        if path.exists():
            return f"the data directory {path} is not a folder (set CTXSCOPE_HOME to a writable folder)"
        parent = nearest_existing(path)
        try:
            path.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            return (f"the data directory {path} cannot be created ({exc.strerror} at {parent}); "
                    "set CTXSCOPE_HOME to a writable folder")
    probe = path / f".write-test-{os.getpid()}"
    try:
        # os.access() says yes to root on a read-only mount: only a real write tells.
        with open(probe, "wb") as f:
            f.write(b"x" * 4096)
            f.flush()
            os.fsync(f.fileno())
    except OSError as exc:
        return f"the data directory {path} is not writable ({exc.strerror}; {fmt_free(path)})"
    finally:
        try:
            probe.unlink()
        except OSError:
            pass
    return None
