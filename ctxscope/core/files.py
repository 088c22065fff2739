"""Reading a file a user named, bounded.

A size from ``stat`` cannot be trusted to bound a read: it is 0 for devices, FIFOs and
``/proc`` files (``/dev/zero`` then reads forever), and a file can grow while it is
read. So every user path is opened here: refused unless it is a regular file (opened
non-blocking first, so a FIFO with no writer cannot hang the open), then read up to a
limit and refused beyond it. Every refusal is an :class:`OSError` whose ``strerror``
is one line a user can act on, so callers report it as any unreadable file.
"""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path
from typing import BinaryIO

_READ_CHUNK = 1024**2


class FileRefused(OSError):
    """Not a regular file, or larger than allowed: ``strerror`` says which."""

    def __init__(self, reason: str, path: str | os.PathLike[str]) -> None:
        super().__init__(errno.EINVAL, reason, str(path))

    def __str__(self) -> str:
        return self.strerror or "refused"


def _kind(mode: int) -> str:
    if stat.S_ISFIFO(mode):
        return "a FIFO or pipe"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    if stat.S_ISSOCK(mode):
        return "a socket"
    return "not a plain file"


def _limit_text(limit: int) -> str:
    return f"{limit / 1024**2:g} MiB" if limit >= 1024**2 else f"{limit:,} bytes"


def open_regular(path: str | os.PathLike[str]) -> BinaryIO:
    """Open ``path`` for reading if it is a regular file (the check is made on the open
    file, so nothing can swap it in between). Raises :class:`FileRefused`,
    ``IsADirectoryError``, ``FileNotFoundError`` or another :class:`OSError`."""
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0))
    try:
        mode = os.fstat(fd).st_mode
        if stat.S_ISDIR(mode):
            raise IsADirectoryError(errno.EISDIR, "is a directory", str(path))
        if not stat.S_ISREG(mode):
            raise FileRefused(f"{_kind(mode)}, not a regular file", path)
        if hasattr(os, "set_blocking"):
            os.set_blocking(fd, True)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def read_limited(path: str | os.PathLike[str], limit: int) -> bytes:
    """The bytes of the regular file ``path``, refused (:class:`FileRefused`) past
    ``limit`` bytes, whatever its size claims."""
    with open_regular(path) as fh:
        if os.fstat(fh.fileno()).st_size > limit:
            raise FileRefused(f"larger than {_limit_text(limit)}", path)
        data = bytearray()
        while True:
            chunk = fh.read(min(_READ_CHUNK, limit + 1 - len(data)))
            if not chunk:
                return bytes(data)
            data += chunk
            if len(data) > limit:  # it grew, or its size was not its size
                raise FileRefused(f"larger than {_limit_text(limit)}", path)


def read_text_limited(path: str | os.PathLike[str], limit: int) -> str:
    """:func:`read_limited`, decoded as UTF-8 (``UnicodeDecodeError`` otherwise)."""
    return read_limited(path, limit).decode("utf-8")


def why_unreadable(exc: OSError) -> str:
    """A short reason for an :class:`OSError` raised reading a file."""
    if isinstance(exc, FileNotFoundError):
        return "no such file"
    if isinstance(exc, IsADirectoryError):
        return "is a directory"
    return exc.strerror or type(exc).__name__


def checked_size(path: Path, limit: int) -> None:
    """Refuse (:class:`FileRefused`) a file another library will read itself (a model's
    config.json) when it is not regular or is larger than ``limit``."""
    with open_regular(path) as fh:
        if os.fstat(fh.fileno()).st_size > limit:
            raise FileRefused(f"larger than {_limit_text(limit)}", path)
