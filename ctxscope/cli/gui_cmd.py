"""``ctxscope gui [MODEL] [sweep options] [--run]`` and bare ``ctxscope``: the desktop app."""

from __future__ import annotations

import argparse
import importlib.util
import os
import sys
from typing import Any

from ctxscope.cli.sweep_cmd import add_sweep_options, sweep_config, specs_from_args
from ctxscope.core.errors import BadInputError

GUI_DEFAULT_LENGTHS = "128,256,512,1k"


def add_parser(sub: Any) -> None:
    p = sub.add_parser("gui", help="open the desktop app (optionally with a model, sweeping at once with --run)")
    p.add_argument("model", nargs="?", default=None, help="model to put in the model panel")
    add_sweep_options(p)
    p.add_argument("--run", action="store_true", help="start the sweep as soon as the window opens")
    p.set_defaults(func=run)


def display_problem() -> str | None:
    """Why the app cannot open here, in one line, or ``None``."""
    if importlib.util.find_spec("PySide6") is None or importlib.util.find_spec("pyqtgraph") is None:
        return "the desktop app needs PySide6 and pyqtgraph: pip install 'PySide6-Essentials!=6.12.0' pyqtgraph"
    if sys.platform.startswith("linux") and not os.environ.get("QT_QPA_PLATFORM") and not (
            os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
        return ("no display to open the app on (DISPLAY and WAYLAND_DISPLAY are unset): "
                "run `ctxscope sweep MODEL` headless, or see `ctxscope --help`")
    return None


def run(args: argparse.Namespace) -> int:
    spec, lengths, modes = specs_from_args(args)
    if args.run and spec is None:
        raise BadInputError("--run needs a MODEL to sweep")
    problem = display_problem()
    if problem:
        raise BadInputError(problem)
    from ctxscope.core.lengths import parse_lengths

    cfg = sweep_config(args, lengths or parse_lengths(GUI_DEFAULT_LENGTHS), modes)
    from ctxscope.gui.app import run_app

    return run_app(spec, cfg if (args.run or lengths) else None, autorun=args.run)


def run_bare() -> int:
    """``ctxscope`` with no arguments, where :func:`display_problem` found none."""
    from ctxscope.gui.app import run_app

    return run_app()
