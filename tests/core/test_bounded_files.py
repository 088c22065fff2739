"""Every user path is read through one bounded reader: devices, FIFOs and /proc files
(whose size says 0) are refused or bounded, never read for ever, never hung on."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from ctxscope.core.errors import RunFileError
from ctxscope.core.files import FileRefused, read_limited

pytestmark = pytest.mark.timeout(30)  # a reader that blocks or never ends fails here, not hangs the suite


@pytest.fixture
def fifo(tmp_path: Path) -> Path:
    path = tmp_path / "fifo"
    os.mkfifo(path)  # nobody writes: open(path) would block
    return path


def test_devices_and_fifos_are_refused_without_reading(fifo: Path) -> None:
    with pytest.raises(FileRefused, match="a device, not a regular file"):
        read_limited("/dev/zero", 1024)
    with pytest.raises(FileRefused, match="a FIFO or pipe, not a regular file"):
        read_limited(fifo, 1024)
    with pytest.raises(IsADirectoryError):
        read_limited(fifo.parent, 1024)


def test_a_file_is_bounded_by_what_it_holds_not_by_its_size(tmp_path: Path) -> None:
    status = read_limited("/proc/self/status", 1 << 20)  # st_size 0, yet it has content
    assert os.stat("/proc/self/status").st_size == 0 and b"VmRSS" in status
    big = tmp_path / "big"
    big.write_bytes(b"x" * 2000)
    assert read_limited(big, 2000) == b"x" * 2000
    with pytest.raises(FileRefused, match="larger than 1,999 bytes"):
        read_limited(big, 1999)


def test_attention_maps_named_by_a_fifo_are_refused(fifo: Path) -> None:
    from ctxscope.core.attention.storage import load_checked

    with pytest.raises(RunFileError, match="a FIFO or pipe, not a regular file"):
        load_checked(fifo)
