"""NVML (the ``pynvml`` module of nvidia-ml-py), typed and failure tolerant.

GPUs are identified by UUID, never by index: torch numbers devices after
``CUDA_VISIBLE_DEVICES`` and ``CUDA_DEVICE_ORDER`` (fastest first by default), NVML
numbers every GPU of the machine in PCI order, so the same index can name two
different cards. torch's ``props.uuid`` and NVML's ``GPU-…`` string name the same one.
Handles are cached per UUID. Every argument that reaches NVML is ``bytes`` (the
wrappers hand it to ``c_char_p``: an ``int`` there is dereferenced as an address and
kills the process). Nothing here imports torch: the desktop app samples telemetry on
its UI thread before torch has loaded.
"""

from __future__ import annotations

import sys
import threading
import uuid as uuidlib
import warnings
from dataclasses import dataclass
from typing import Any

_lock = threading.Lock()
_state: dict[str, Any] = {"tried": False, "mod": None}
_handles: dict[str, Any] = {}

# Clock-event reasons that mean the device was slowed by something other than idling
# or its configured clocks (NVML's nvmlClocksEventReason* bits).
SLOWDOWN_REASONS = {0x4: "power cap", 0x8: "hardware slowdown", 0x20: "thermal (software)",
                    0x40: "thermal (hardware)", 0x80: "power brake"}
#: The ones that flag a measurement: running into the power cap is what a busy GPU
#: does under this very load (recorded, not flagged); the others mean heat or a fault.
FLAGGED_SLOWDOWNS = 0x8 | 0x20 | 0x40 | 0x80


def nvml() -> Any | None:
    """The initialised ``pynvml`` module, or ``None`` where there is no NVIDIA driver."""
    with _lock:
        if not _state["tried"]:
            _state["tried"] = True
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")  # pynvml's import-time deprecation notice
                    import pynvml
                pynvml.nvmlInit()
                _state["mod"] = pynvml
            except Exception:  # no library, no driver, no permission: all mean "no NVML"
                _state["mod"] = None
        return _state["mod"]


def normalize_uuid(raw: object) -> str | None:
    """torch's ``props.uuid`` (a bare UUID: ``_CUuuid`` or, in older torch, a string;
    possibly already ``GPU-``/``MIG-`` prefixed) → the bare canonical lower-case form."""
    text = str(raw).strip()
    for prefix in ("GPU-", "MIG-"):
        text = text.removeprefix(prefix)
    try:
        return str(uuidlib.UUID(text))
    except ValueError:
        return None


def torch_uuid(device_index: int) -> str | None:
    """The bare UUID of torch's CUDA device ``device_index``; ``None`` when torch is not
    loaded (this module never imports it) or has no such device."""
    torch = sys.modules.get("torch")
    if torch is None:
        return None
    try:
        if not torch.cuda.is_available():
            return None
        return normalize_uuid(torch.cuda.get_device_properties(device_index).uuid)
    except Exception:
        return None


def handle(uuid: str | None) -> Any | None:
    """NVML handle of the GPU (or MIG instance) with this bare UUID; cached."""
    lib = nvml()
    if lib is None or not uuid:
        return None
    with _lock:
        if uuid in _handles:
            return _handles[uuid]
    found = None
    for prefix in ("GPU-", "MIG-"):
        try:
            found = lib.nvmlDeviceGetHandleByUUID(f"{prefix}{uuid}".encode("ascii"))
            break
        except Exception:  # not this namespace, or the device is gone
            continue
    if found is not None:
        with _lock:
            _handles[uuid] = found
    return found


def _call(uuid: str | None, fn: str, *args: Any) -> Any | None:
    lib, h = nvml(), handle(uuid)
    if lib is None or h is None:
        return None
    try:
        return getattr(lib, fn)(h, *args)
    except Exception:  # unsupported on this board, or a transient NVML error
        return None


def memory_info(uuid: str | None) -> tuple[int, int] | None:
    """(free, total) bytes of the device — from NVML, so no CUDA context is created."""
    info = _call(uuid, "nvmlDeviceGetMemoryInfo")
    return None if info is None else (int(info.free), int(info.total))


def used_bytes(uuid: str | None) -> int | None:
    """Device memory in use by every process (CUDA contexts included)."""
    info = _call(uuid, "nvmlDeviceGetMemoryInfo")
    return None if info is None else int(info.used)


@dataclass(frozen=True, slots=True)
class GpuProcess:
    pid: int
    used_bytes: int | None


def compute_processes(uuid: str | None) -> list[GpuProcess] | None:
    """Processes holding a compute context on the device (``None``: NVML cannot say)."""
    procs = _call(uuid, "nvmlDeviceGetComputeRunningProcesses")
    if procs is None:
        return None
    out = []
    for p in procs:
        used = getattr(p, "usedGpuMemory", None)
        out.append(GpuProcess(int(p.pid), int(used) if isinstance(used, int) and used >= 0 else None))
    return out


def energy_mj(uuid: str | None) -> int | None:
    """The device's total energy counter since the driver loaded, in millijoules."""
    value = _call(uuid, "nvmlDeviceGetTotalEnergyConsumption")
    return None if value is None else int(value)


def slowdown_mask(uuid: str | None) -> int | None:
    """Current clock-event reasons, limited to real slowdowns (see ``SLOWDOWN_REASONS``)."""
    value = _call(uuid, "nvmlDeviceGetCurrentClocksEventReasons")
    if value is None:
        value = _call(uuid, "nvmlDeviceGetCurrentClocksThrottleReasons")  # older drivers' name
    if value is None:
        return None
    return int(value) & sum(SLOWDOWN_REASONS)


def slowdown_names(mask: int | None) -> list[str]:
    return [name for bit, name in SLOWDOWN_REASONS.items() if mask and mask & bit]


def driver_version() -> str | None:
    lib = nvml()
    if lib is None:
        return None
    try:
        version = lib.nvmlSystemGetDriverVersion()
        return version.decode() if isinstance(version, bytes) else str(version)
    except Exception:
        return None


def reset_for_tests() -> None:
    """Forget the module and the cached handles (tests install a fake ``pynvml``)."""
    with _lock:
        _state.update(tried=False, mod=None)
        _handles.clear()
