"""Shared helpers for the benchmark scripts (not part of the package)."""

from __future__ import annotations

import json
import platform
import sys
from dataclasses import asdict
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:  # run from a checkout: python bench/x.py
    sys.path.insert(0, str(REPO))


def device_label(device: str) -> str:
    import torch

    if device.startswith("cuda"):
        return torch.cuda.get_device_name(torch.device(device))
    from ctxscope.core.machine.environment import cpu_name

    return f"CPU: {cpu_name()} ({torch.get_num_threads()} threads)"


def write_result(path: str | None, payload: dict) -> None:
    from ctxscope.core.machine.environment import collect_environment
    import torch

    device = payload.get("device", "cpu")
    env = asdict(collect_environment(torch.device(device) if device != "auto" else None))
    payload = {**payload, "environment": env, "python": platform.python_version()}
    text = json.dumps(payload, indent=1)
    if path:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        Path(path).write_text(text + "\n", encoding="utf-8")
        print(f"wrote {path}")
