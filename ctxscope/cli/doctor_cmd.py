"""``ctxscope doctor``: check this machine for what ctxscope needs and print concrete
fixes: torch and transformers, CUDA and the driver, NVML, free GPU memory, Qt and its
platform plugin (with the system libraries ``xcb`` needs), the HF cache and offline mode,
the history folder, the report libraries."""

from __future__ import annotations

import argparse
import ctypes.util
import importlib
import json
import os
import subprocess
import sys
from dataclasses import asdict, dataclass
from typing import Any

# Shared objects Qt's xcb platform plugin loads, with the Debian/Ubuntu package of each.
XCB_LIBS = {"xcb-cursor": "libxcb-cursor0", "xcb-icccm": "libxcb-icccm4", "xcb-image": "libxcb-image0",
            "xcb-keysyms": "libxcb-keysyms1", "xcb-render-util": "libxcb-render-util0", "xcb-shape": "libxcb-shape0",
            "xkbcommon-x11": "libxkbcommon-x11-0", "xkbcommon": "libxkbcommon0", "EGL": "libegl1", "GL": "libgl1",
            "fontconfig": "libfontconfig1", "dbus-1": "libdbus-1-3", "glib-2.0": "libglib2.0-0"}
CPU_TORCH = "pip install torch --index-url https://download.pytorch.org/whl/cpu"
CUDA_TORCH = "pip install torch --index-url https://download.pytorch.org/whl/cu126"


@dataclass(frozen=True)
class Check:
    name: str
    status: str  # ok | warn | fail | info
    detail: str
    fix: str | None = None


def add_parser(sub: Any) -> None:
    p = sub.add_parser("doctor", help="check the environment (GPU, driver, Qt, HF cache) and print fixes")
    p.add_argument("--format", choices=("table", "json"), default="table")
    p.add_argument("--no-qt-probe", action="store_true", help="do not start Qt in a subprocess to test the display")
    p.set_defaults(func=run)


def _version(module: str) -> str | None:
    try:
        return str(getattr(importlib.import_module(module), "__version__", "?"))
    except Exception:  # a broken install is reported, not raised
        return None


def check_torch() -> list[Check]:
    out = []
    torch_version = _version("torch")
    if torch_version is None:
        return [Check("torch", "fail", "not installed", f"{CPU_TORCH}   (or, with an NVIDIA GPU: {CUDA_TORCH})")]
    import torch

    from ctxscope.core.units import fmt_bytes

    # Versions against the supported ranges are check_versions()'s; this is the build.
    build = f"built for CUDA {torch.version.cuda}" if torch.version.cuda else "CPU-only build"
    out.append(Check("torch build", "ok", f"{torch_version}: {build}"))
    if not torch.version.cuda:
        out.append(Check("CUDA", "warn", "this torch has no CUDA: sweeps run on the CPU only",
                         f"with an NVIDIA GPU: {CUDA_TORCH}"))
        return out
    if not torch.cuda.is_available():
        hidden = os.environ.get("CUDA_VISIBLE_DEVICES")
        why = f"CUDA_VISIBLE_DEVICES={hidden!r} hides every GPU" if hidden is not None else "no usable GPU or driver"
        out.append(Check("CUDA", "warn", f"CUDA build but {why}",
                         "check `nvidia-smi`; install or update the NVIDIA driver; unset CUDA_VISIBLE_DEVICES"))
        return out
    for i in range(torch.cuda.device_count()):
        free, total = torch.cuda.mem_get_info(i)
        status = "ok" if free >= 2 * 2**30 else "warn"
        fix = None if status == "ok" else "another process holds the GPU's memory: see `nvidia-smi`"
        out.append(Check(f"GPU cuda:{i}", status, f"{torch.cuda.get_device_name(i)}: {fmt_bytes(free)} of "
                                                   f"{fmt_bytes(total)} free", fix))
    return out


def check_versions() -> list[Check]:
    """Each declared dependency against its declared range and the last tested release."""
    from ctxscope.versions import dependency_report

    out = []
    for dep in dependency_report():
        tested = f"; tested with {dep.tested}" if dep.tested else ""
        if dep.verdict == "missing":
            out.append(Check(dep.name, "fail" if dep.essential else "warn", f"not installed (needs {dep.declared})",
                             f'pip install "{dep.name}{dep.declared if dep.declared != "any" else ""}"'))
        elif dep.verdict == "outside":
            out.append(Check(dep.name, "fail" if dep.essential else "warn",
                             f"{dep.installed} is outside the supported range {dep.declared}{tested}",
                             f'pip install "{dep.name}{dep.declared}"'))
        elif dep.verdict == "newer":
            out.append(Check(dep.name, "info", f"{dep.installed}: newer than the last tested {dep.tested} "
                                               f"(supported: {dep.declared}); if something breaks, "
                                               f"pip install \"{dep.name}=={dep.tested}\""))
        else:
            out.append(Check(dep.name, "ok", f"{dep.installed} (supported: {dep.declared}{tested})"))
    return out


def check_nvml() -> Check:
    from ctxscope.core.machine import nvml

    driver = nvml.driver_version()
    if driver:
        return Check("NVIDIA driver / NVML", "ok", f"driver {driver}; GPU telemetry on")
    return Check("NVIDIA driver / NVML", "info", "not found: GPU telemetry (power, clocks, utilisation) off",
                 "on an NVIDIA machine: install the driver and `pip install nvidia-ml-py`")


def check_qt(probe: bool) -> list[Check]:
    out = []
    qt = _version("PySide6")
    if qt is None:
        return [Check("Qt (PySide6)", "fail", "not installed: the desktop app cannot start (the CLI works)",
                      'pip install "PySide6-Essentials!=6.12.0"')]
    if qt == "6.12.0" and sys.version_info[:2] == (3, 11):
        out.append(Check("Qt (PySide6)", "fail", "6.12.0 crashes on Python 3.11 (none_dealloc)",
                         'pip install "PySide6-Essentials==6.11.3"'))
    else:
        out.append(Check("Qt (PySide6)", "ok", f"{qt}, pyqtgraph {_version('pyqtgraph') or 'MISSING'}"))
    platform = os.environ.get("QT_QPA_PLATFORM")
    display = os.environ.get("WAYLAND_DISPLAY") or os.environ.get("DISPLAY")
    if platform:
        out.append(Check("display", "info", f"QT_QPA_PLATFORM={platform}"))
    elif display:
        out.append(Check("display", "ok", f"{'Wayland' if os.environ.get('WAYLAND_DISPLAY') else 'X11'} {display}"))
    elif sys.platform.startswith("linux"):
        out.append(Check("display", "warn", "no DISPLAY or WAYLAND_DISPLAY: the app cannot open a window here",
                         "use the CLI (`ctxscope sweep ... --out run.json`) and open the file on a desktop, or "
                         "run the app under `xvfb-run -a ctxscope`"))
    if sys.platform.startswith("linux"):
        missing = [pkg for lib, pkg in XCB_LIBS.items() if ctypes.util.find_library(lib) is None]
        if missing:
            out.append(Check("Qt system libraries", "warn", f"missing: {', '.join(missing)}",
                             f"sudo apt-get install {' '.join(missing)}   (Qt blames xcb-cursor whatever is missing; "
                             "QT_DEBUG_PLUGINS=1 names the real library)"))
        else:
            out.append(Check("Qt system libraries", "ok", "everything the xcb platform plugin loads is present"))
    if probe and (platform or display):
        out.append(_probe_qt())
    return out


def _probe_qt() -> Check:
    """Start a QApplication in a subprocess: the one test that cannot lie."""
    code = "from PySide6.QtWidgets import QApplication; app = QApplication([]); print(app.platformName())"
    try:
        proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=30)
    except subprocess.TimeoutExpired:
        return Check("Qt start", "fail", "starting Qt hung for 30 s", "check the display connection (ssh -X?)")
    if proc.returncode == 0:
        return Check("Qt start", "ok", f"platform plugin {proc.stdout.strip()!r} starts")
    last = (proc.stderr.strip().splitlines() or ["no output"])[-1][:160]
    return Check("Qt start", "fail", f"Qt could not start: {last}",
                 "install the libraries above; QT_DEBUG_PLUGINS=1 ctxscope shows which one fails")


def check_hub() -> list[Check]:
    out = []
    try:
        from huggingface_hub import constants
    except ImportError:
        return [Check("HF cache", "warn", "huggingface_hub missing", "pip install huggingface_hub")]
    cache = constants.HF_HUB_CACHE
    models = sorted(d.removeprefix("models--").replace("--", "/") for d in os.listdir(cache)
                    if d.startswith("models--")) if os.path.isdir(cache) else []
    shown = ", ".join(models[:5]) + (f" and {len(models) - 5} more" if len(models) > 5 else "")
    out.append(Check("HF cache", "ok" if models else "info",
                     f"{cache}: {len(models)} model(s){': ' + shown if models else ''}",
                     None if models else "no model cached yet: presets (preset:gpt2) need none; "
                                         "`hf download MODEL` fetches one"))
    offline = [k for k in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE") if os.environ.get(k, "") not in ("", "0")]
    out.append(Check("offline mode", "info", f"{', '.join(offline)} set: only cached models load" if offline
                     else "off: Hub ids are downloaded when not cached"))
    return out


def check_local() -> list[Check]:
    from ctxscope.core.model.kernels import kernel_problem

    out = check_history()
    missing = [m for m in ("matplotlib", "jinja2") if _version(m) is None]
    out.append(Check("HTML reports", "warn" if missing else "ok",
                     f"missing {', '.join(missing)}" if missing else "matplotlib and Jinja2 present",
                     f"pip install {' '.join(missing)}" if missing else None))
    problem = kernel_problem("flash_attention_2")
    out.append(Check("flash attention", "info", problem or "flash_attention_2 can run (flash_attn installed)"))
    return out


def check_history() -> list[Check]:
    """The data directory and the run history, looked at without changing anything."""
    from ctxscope.core.paths import data_dir_path

    path = data_dir_path() / "runs.sqlite3"
    try:
        from ctxscope.store.health import history_findings

        return [Check(f.name, f.status, f.detail, f.fix) for f in history_findings(path)]
    except Exception as exc:  # doctor always runs: whatever breaks here is a finding
        return [Check("run history", "fail", f"{path}: {type(exc).__name__}: {exc}",
                      "set CTXSCOPE_HOME to a writable folder")]


def run(args: argparse.Namespace) -> int:
    checks = [Check("Python", "ok" if sys.version_info >= (3, 10) else "fail", sys.version.split()[0],
                    None if sys.version_info >= (3, 10) else "ctxscope needs Python 3.10 or newer")]
    checks += check_versions()
    checks += check_torch()
    checks.append(check_nvml())
    checks += check_qt(probe=not args.no_qt_probe)
    checks += check_hub()
    checks += check_local()
    if args.format == "json":
        print(json.dumps([asdict(c) for c in checks], indent=1))
    else:
        _print(checks)
    return 1 if any(c.status == "fail" for c in checks) else 0


def _print(checks: list[Check]) -> None:
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    marks = {"ok": "[green]✔[/green]", "warn": "[yellow]![/yellow]", "fail": "[red]✘[/red]", "info": "[blue]i[/blue]"}
    console = Console(highlight=False, soft_wrap=True, width=None if sys.stdout.isatty() else 160)
    table = Table(show_header=False, box=None)
    for c in checks:
        table.add_row(marks[c.status], c.name, escape(c.detail))
    console.print(table)
    fixes = [c for c in checks if c.fix and c.status in ("fail", "warn")]
    if fixes:
        console.print("\n[bold]To fix:[/bold]")
        for c in fixes:
            console.print(f"  {c.name}: {escape(c.fix or '')}")
    bad = sum(c.status == "fail" for c in checks)
    console.print(f"\n{'[red]' + str(bad) + ' problem(s) found.[/red]' if bad else '[green]Ready.[/green]'}")
