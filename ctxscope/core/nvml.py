"""Thin, failure-tolerant access to NVML (the ``pynvml`` module of nvidia-ml-py)."""

from __future__ import annotations

import sys
import threading
from typing import Any

_lock = threading.Lock()
_state: dict[str, Any] = {"tried": False, "ok": False, "mod": None}


def nvml() -> Any | None:
    """The initialised ``pynvml`` module, or ``None`` where there is no NVIDIA driver."""
    with _lock:
        if not _state["tried"]:
            _state["tried"] = True
            try:
                import warnings

                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")  # pynvml's import-time deprecation notice
                    import pynvml
                pynvml.nvmlInit()
                _state.update(ok=True, mod=pynvml)
            except Exception:  # no library, no driver, no permission: all mean "no NVML"
                _state["ok"] = False
        return _state["mod"] if _state["ok"] else None


def handle_for(device_index: int) -> Any | None:
    """NVML handle of the CUDA device ``device_index`` (matched by PCI bus id when possible)."""
    lib = nvml()
    if lib is None:
        return None
    try:
        # Match torch's device numbering when torch is already loaded; never import it
        # here (the desktop app samples telemetry on its UI thread before torch loads).
        torch = sys.modules.get("torch")
        bus = None
        if torch is not None and torch.cuda.is_available():
            bus = torch.cuda.get_device_properties(device_index).pci_bus_id
        if bus:
            return lib.nvmlDeviceGetHandleByPciBusId(bus.encode() if isinstance(bus, str) else bus)
    except Exception:
        pass
    try:
        return lib.nvmlDeviceGetHandleByIndex(device_index)
    except Exception:
        return None


def used_bytes(device_index: int) -> int | None:
    """Device memory in use by every process (includes CUDA contexts), or ``None``."""
    lib, handle = nvml(), handle_for(device_index)
    if lib is None or handle is None:
        return None
    try:
        return int(lib.nvmlDeviceGetMemoryInfo(handle).used)
    except Exception:
        return None


def driver_version() -> str | None:
    lib = nvml()
    if lib is None:
        return None
    try:
        version = lib.nvmlSystemGetDriverVersion()
        return version.decode() if isinstance(version, bytes) else str(version)
    except Exception:
        return None
