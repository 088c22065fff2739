"""``ctxscope env`` and ``ctxscope presets``."""

from __future__ import annotations

import argparse
import json
import sys
from importlib import metadata
from dataclasses import asdict
from typing import Any


def add_parsers(sub: Any) -> None:
    env = sub.add_parser("env", help="devices, GPU, driver, CUDA and library versions")
    env.add_argument("--format", choices=("table", "json"), default="table")
    env.add_argument("--probe", action="store_true",
                     help="measure each device's peak matmul FLOP/s and copy bandwidth (a few seconds; saved and "
                          "used instead of the data sheet for predictions)")
    env.set_defaults(func=cmd_env)
    presets = sub.add_parser("presets", help="list the architecture presets (random weights)")
    presets.add_argument("--format", choices=("table", "json"), default="table")
    presets.set_defaults(func=cmd_presets)


def _devices() -> list[dict[str, Any]]:
    import torch

    from ctxscope.core.machine import nvml
    from ctxscope.core.machine.environment import cpu_name

    out: list[dict[str, Any]] = [{"device": "cpu", "name": cpu_name()}]
    for i in range(torch.cuda.device_count() if torch.cuda.is_available() else 0):
        props = torch.cuda.get_device_properties(i)
        free, total = torch.cuda.mem_get_info(i)
        out.append({"device": f"cuda:{i}", "name": props.name, "memory_total_bytes": int(total),
                    "memory_free_bytes": int(free), "compute_capability": f"{props.major}.{props.minor}",
                    # NVML knows a GPU by its UUID: an index names another card under
                    # CUDA_VISIBLE_DEVICES (and used to be passed here, reading nothing).
                    "nvml_used_bytes": nvml.used_bytes(nvml.torch_uuid(i))})
    if torch.backends.mps.is_available():
        out.append({"device": "mps", "name": "Apple MPS"})
    return out


def cmd_env(args: argparse.Namespace) -> int:
    import torch

    from ctxscope.core.machine import nvml
    from ctxscope.core.machine.environment import collect_environment

    env = asdict(collect_environment(None))
    env["driver"] = nvml.driver_version()
    env["nvml"] = nvml.nvml() is not None
    env["cuda_available"] = torch.cuda.is_available()
    env["devices"] = _devices()
    from ctxscope.core.machine.hardware import peak_for, save_probe
    from ctxscope.core.machine.peak_probe import probe

    for dev in env["devices"]:
        if args.probe and dev["device"] != "mps":
            measured = probe(dev["device"])
            save_probe(measured)
        peak = peak_for(dev["name"])
        dev["peak"] = None if peak is None else asdict(peak)
    for name in ("accelerate", "pynvml", "numpy", "psutil"):
        try:
            env.setdefault("libraries", {})[name] = metadata.version("nvidia-ml-py" if name == "pynvml" else name)
        except Exception:
            env.setdefault("libraries", {})[name] = None
    if args.format == "json":
        print(json.dumps(env, indent=1))
        return 0
    from ctxscope.report.fmt import fmt_bytes

    rows = [("ctxscope", env["ctxscope"]), ("python", env["python"]), ("platform", env["platform"]),
            ("cpu", f"{env['cpu']} ({env['cpu_count']} logical cores, {fmt_bytes(env['memory_bytes'])} RAM)"),
            ("torch", f"{env['torch']} (CUDA {env['cuda'] or 'none: CPU build'})"),
            ("transformers", env["transformers"]),
            ("NVIDIA driver", env["driver"] or "not found (no NVML: GPU telemetry off)")]
    rows += [(k, v or "not installed") for k, v in env["libraries"].items()]
    for dev in env["devices"]:
        extra = ""
        if "memory_total_bytes" in dev:
            extra = (f", {fmt_bytes(dev['memory_free_bytes'])} free of {fmt_bytes(dev['memory_total_bytes'])}, "
                     f"compute {dev['compute_capability']}")
        rows.append((f"device {dev['device']}", f"{dev['name']}{extra}"))
        peak = dev.get("peak")
        if peak:
            from ctxscope.report.fmt import fmt_rate

            flops = ", ".join(f"{k} {fmt_rate(v)}" for k, v in peak["flops"].items())
            rows.append(("  peak", f"{flops}; memory {fmt_rate(peak['bytes_per_s'], 'B/s')} ({peak['source']})"))
        elif dev["device"] != "mps":
            rows.append(("  peak", "unknown: run `ctxscope env --probe` to measure it"))
    if not env["cuda_available"]:
        rows.append(("note", "no CUDA device: sweeps run on the CPU"))
    width = max(len(k) for k, _ in rows)
    for key, value in rows:
        print(f"{key:<{width}}  {value}")
    return 0


def preset_table() -> list[dict[str, Any]]:
    """Each preset's architecture, computed on the meta device (no memory, no weights)."""
    import torch
    from transformers import AutoConfig, AutoModel, AutoModelForCausalLM

    from ctxscope.core.model.modelinfo import describe, is_decoder_config
    from ctxscope.core.model.presets import preset_names, preset_origin, preset_path

    out = []
    for name in preset_names():
        cfg = AutoConfig.from_pretrained(str(preset_path(name)))
        with torch.device("meta"):
            model = (AutoModelForCausalLM if is_decoder_config(cfg) else AutoModel).from_config(cfg)  # type: ignore[no-untyped-call]
        info = describe(model, cfg, f"preset:{name}", random_weights=True, revision=None)
        out.append({"name": name, "origin": preset_origin(name), **asdict(info)})
    return out


def cmd_presets(args: argparse.Namespace) -> int:
    rows = preset_table()
    if args.format == "json":
        print(json.dumps(rows, indent=1))
        return 0
    from rich.console import Console
    from rich.table import Table

    from ctxscope.report.fmt import fmt_count, fmt_layer_mix

    table = Table(caption="Use as preset:NAME. Random weights: latency and memory are valid, attention is not meaningful.")
    for col in ("name", "architecture", "params", "layers", "heads/kv", "head dim", "max positions", "window", "from"):
        table.add_column(col)
    for r in rows:
        params = fmt_count(r["params"]) + (f" ({fmt_count(r['active_params'])} active)" if r["active_params"] else "")
        attends = r["num_heads"] > 0
        table.add_row(r["name"], r["architecture"], params, fmt_layer_mix(r["layer_kinds"], short=True) or str(r["num_layers"]),
                      f"{r['num_heads']}/{r['num_kv_heads']}" if attends else "-", str(r["head_dim"]) if attends else "-",
                      str(r["max_positions"] or "-"), str(r["sliding_window"] or "-"), r["origin"])
    Console(highlight=False, soft_wrap=True, width=None if sys.stdout.isatty() else 160).print(table)
    return 0
