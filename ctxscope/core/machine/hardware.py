"""Peak compute and memory bandwidth of a device: from the vendors' data sheets for
common GPUs, or measured by a short probe (preferred when present). Torch-free except
:func:`probe`; measured peaks are kept in ``<data dir>/probes.json``."""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from ctxscope.core.paths import data_dir


@dataclass(frozen=True, slots=True)
class Peak:
    """Dense matmul FLOP/s per dtype and memory bandwidth in bytes/s; ``source`` says
    where they come from (``table: H100 SXM`` or ``probe 2026-11-23``)."""

    name: str
    flops: dict[str, float]  # dtype name → FLOP/s (dense, no sparsity)
    bytes_per_s: float
    source: str

    def flops_for(self, dtype: str) -> float | None:
        return self.flops.get(dtype)


# Vendor data sheets, dense (no 2:4 sparsity). float32 is plain FP32 (torch does not use
# TF32 for float32 matmuls by default); half types use FP32 accumulation (GeForce cards
# are quoted at half rate for that). TB/s are decimal (1e12 bytes/s).
#   pattern on torch.cuda.get_device_name,  name,  bf16 TF, fp16 TF, fp32 TF, TB/s
_TABLE: tuple[tuple[str, str, float | None, float, float, float], ...] = (
    (r"H200", "H200 SXM", 989.4, 989.4, 66.9, 4.8),
    (r"H100 NVL", "H100 NVL", 835.0, 835.0, 60.0, 3.9),
    (r"H100.*PCIe", "H100 PCIe", 756.0, 756.0, 51.0, 2.0),
    (r"H100", "H100 SXM", 989.4, 989.4, 66.9, 3.35),
    (r"A100.*80GB.*PCIe|A100-PCIE-80GB", "A100 80GB PCIe", 312.0, 312.0, 19.5, 1.935),
    (r"A100.*PCIE|A100.*PCIe", "A100 40GB PCIe", 312.0, 312.0, 19.5, 1.555),
    (r"A100.*80GB", "A100 80GB SXM", 312.0, 312.0, 19.5, 2.039),
    (r"A100", "A100 40GB SXM", 312.0, 312.0, 19.5, 1.555),
    (r"L40S", "L40S", 362.05, 362.05, 91.6, 0.864),
    (r"\bL4\b", "L4", 121.0, 121.0, 30.3, 0.3),
    # A10G (AWS G5) has no public data sheet of its own: AWS quotes 70 TF tensor, dense.
    (r"A10G", "A10G", 70.0, 70.0, 31.2, 0.6),
    (r"\bA10\b", "A10", 125.0, 125.0, 31.2, 0.6),
    (r"\bT4\b", "T4", None, 65.0, 8.1, 0.32),
    (r"V100.*PCIe", "V100 PCIe", None, 112.0, 14.0, 0.9),
    (r"V100", "V100 SXM2", None, 125.0, 15.7, 0.9),
    (r"RTX 3090", "GeForce RTX 3090", 71.0, 71.0, 35.6, 0.936),
    (r"RTX 4090", "GeForce RTX 4090", 165.2, 165.2, 82.6, 1.008),
)


def table_names() -> list[str]:
    return [row[1] for row in _TABLE]


def from_table(device_name: str | None) -> Peak | None:
    """The data-sheet peak of a GPU by its name as torch reports it (``None``: unknown)."""
    if not device_name:
        return None
    for pattern, name, bf16, fp16, fp32, tbs in _TABLE:
        if re.search(pattern, device_name, re.IGNORECASE) or device_name.strip().lower() == name.lower():
            flops = {"float16": fp16 * 1e12, "float32": fp32 * 1e12}
            if bf16 is not None:
                flops["bfloat16"] = bf16 * 1e12
            return Peak(name=name, flops=flops, bytes_per_s=tbs * 1e12, source=f"table: {name} data sheet")
    return None


def _probe_file() -> Path:
    return data_dir() / "probes.json"


def load_probes() -> dict[str, Any]:
    """Saved probes by device name, as read (each is checked where it is used)."""
    try:
        data = json.loads(_probe_file().read_text(encoding="utf-8"))
    except (FileNotFoundError, ValueError, OSError):
        return {}
    return data if isinstance(data, dict) else {}


def save_probe(peak: Peak) -> None:
    probes = load_probes()
    probes[peak.name] = asdict(peak)
    path = _probe_file()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".part")
    tmp.write_text(json.dumps(probes, indent=1), encoding="utf-8")
    tmp.replace(path)


def peak_for(device_name: str | None) -> Peak | None:
    """A measured probe of this device when one was saved, else the data sheet."""
    if device_name:
        saved = load_probes().get(device_name)
        if isinstance(saved, dict):
            try:
                return Peak(name=str(saved["name"]), flops={str(k): float(v) for k, v in saved["flops"].items()},
                            bytes_per_s=float(saved["bytes_per_s"]), source=str(saved["source"]))
            except (KeyError, TypeError, ValueError, AttributeError):
                pass
    return from_table(device_name)
