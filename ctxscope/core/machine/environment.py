"""Describe the machine a run was measured on."""

from __future__ import annotations

import os
import platform

import psutil
import torch

import ctxscope
from ctxscope.core.machine import nvml
from ctxscope.core.results import Environment


def cpu_name() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def collect_environment(device: torch.device | None = None) -> Environment:
    """GPU (name, memory, driver), CUDA, library versions, platform and CPU."""
    import transformers

    gpu_name = gpu_mem = None
    if device is not None and device.type == "cuda":
        props = torch.cuda.get_device_properties(device)
        gpu_name, gpu_mem = props.name, int(props.total_memory)
    elif device is not None and device.type == "mps":
        gpu_name = "Apple MPS"
    return Environment(
        gpu_name=gpu_name,
        gpu_memory_bytes=gpu_mem,
        driver=nvml.driver_version() if device is not None and device.type == "cuda" else None,
        cuda=torch.version.cuda,
        torch=torch.__version__,
        transformers=transformers.__version__,
        ctxscope=ctxscope.__version__,
        platform=platform.platform(),
        cpu=cpu_name(),
        python=platform.python_version(),
        cpu_count=os.cpu_count(),
        memory_bytes=int(psutil.virtual_memory().total),
    )
