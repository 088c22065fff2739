"""``ctxscope gui [MODEL | RUN.json] [sweep options] [--run]``, ``ctxscope open RUN.json...`` and
bare ``ctxscope``: the desktop app."""

from __future__ import annotations

import argparse
import importlib.util
import os
import sys
from pathlib import Path
from typing import Any

from ctxscope.cli.sweep_cmd import add_sweep_options, sweep_config, specs_from_args
from ctxscope.core.errors import BadInputError

GUI_DEFAULT_LENGTHS = "128,256,512,1k"


def add_parser(sub: Any) -> None:
    p = sub.add_parser("gui", help="open the desktop app (optionally with a model, sweeping at once with --run, "
                                   "or with a run file to show)")
    p.add_argument("model", nargs="?", default=None, help="model to put in the model panel, or a run file to show")
    add_sweep_options(p)
    p.add_argument("--run", action="store_true", help="start the sweep as soon as the window opens")
    p.set_defaults(func=run)
    p = sub.add_parser("open", help="open run files in the desktop app (e.g. runs made on a GPU server)")
    p.add_argument("runs", nargs="+", metavar="RUN.json", help="run files: the first is shown, the others overlaid")
    p.set_defaults(func=open_runs)


def is_run_file(source: str) -> bool:
    """Whether ``source`` names a ctxscope run file rather than a model (a config.json is
    a model): run files say so in their first key."""
    path = Path(source)
    if path.suffix.lower() != ".json" or not path.is_file():
        return False
    try:
        with path.open(encoding="utf-8", errors="replace") as f:
            return '"ctxscope.run/' in f.read(4096)
    except OSError:
        return False


def _checked(files: list[str]) -> tuple[str, ...]:
    """Every file read and validated before a window opens: a bad one is one line, exit 2."""
    from ctxscope.core.serialize import load_run

    for name in files:
        load_run(name)
    problem = display_problem()
    if problem:
        raise BadInputError(problem)
    return tuple(files)


def open_runs(args: argparse.Namespace) -> int:
    files = _checked(list(args.runs))
    from ctxscope.gui.app import run_app

    return run_app(runs=files)


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
    if args.model is not None and is_run_file(args.model):
        if args.run:
            raise BadInputError(f"{args.model} is a run file, not a model: --run sweeps a model "
                                "(open the file without --run to see it)")
        files = _checked([args.model])
        from ctxscope.gui.app import run_app

        return run_app(runs=files)
    spec, lengths, modes = specs_from_args(args)
    from ctxscope.core.measure.kv_cache import parse_caches

    if len(caches := parse_caches(getattr(args, "cache", None))) > 1:  # the panel holds one strategy
        raise BadInputError(f"--cache {','.join(caches)}: the app sweeps one strategy at a time; compare several "
                            "with Run → Compare kernels and dtypes…, or `ctxscope sweep MODEL --cache "
                            f"{','.join(caches)}`")
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
