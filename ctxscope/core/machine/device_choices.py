"""The devices a user can pick (the app's device list): built where torch is imported
(it initialises CUDA's driver API, never a CUDA context)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class DeviceChoice:
    id: str
    label: str
    total_bytes: int | None = None
    free_bytes: int | None = None
    uuid: str | None = None  # a GPU's identity for NVML telemetry


def list_devices() -> list[DeviceChoice]:
    """auto, each CUDA GPU (name, free of total memory, UUID), MPS, CPU. Free memory
    comes from NVML: ``torch.cuda.mem_get_info`` would create a CUDA context (≈0.5 GiB)
    on every GPU, held for the app's whole life."""
    import torch
    import transformers  # noqa: F401  (imported once here, not mid-sweep)

    import ctxscope.core.jobs.sweep  # noqa: F401
    from ctxscope.core.machine import nvml
    from ctxscope.core.units import fmt_bytes

    choices = [DeviceChoice("auto", "auto (best available)")]
    for i in range(torch.cuda.device_count() if torch.cuda.is_available() else 0):
        props = torch.cuda.get_device_properties(i)
        uuid = nvml.torch_uuid(i)
        info = nvml.memory_info(uuid)
        free, total = info if info is not None else (None, int(props.total_memory))
        memory = f"{fmt_bytes(free)} of {fmt_bytes(total)} free" if free is not None else fmt_bytes(total)
        choices.append(DeviceChoice(f"cuda:{i}", f"cuda:{i} — {props.name} ({memory})", total, free, uuid))
    if torch.backends.mps.is_available():
        choices.append(DeviceChoice("mps", "mps — Apple GPU"))
    choices.append(DeviceChoice("cpu", "cpu"))
    return choices
