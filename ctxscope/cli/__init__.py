"""Command-line entry point. Imports heavy modules (torch, transformers) only in the
commands that need them, and Qt only for ``ctxscope gui`` and bare ``ctxscope`` (the
desktop app)."""

from __future__ import annotations

import argparse
import atexit
import gc
import os
import sys
from collections.abc import Sequence

import ctxscope
from ctxscope.core.errors import CtxscopeError, DeviceError

EXIT_BAD_INPUT = 2
EXIT_INTERNAL = 1
EXIT_DEVICE = 3  # the device failed mid-run (a lost CUDA context); what was measured is kept
EXIT_CANCELLED = 130


class _Parser(argparse.ArgumentParser):
    """argparse that reports usage errors in one line (exit 2), not a usage block."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(EXIT_BAD_INPUT, f"ctxscope: error: {message} (see: {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    from ctxscope.cli import (desktop_cmd, doctor_cmd, estimate_cmd, gui_cmd, info_cmd, maxctx_cmd, report_cmd,
                              runs_cmd, sweep_cmd, worker_cmd)

    parser = _Parser(prog="ctxscope", description="What context length costs a transformer model on your hardware.")
    parser.add_argument("--version", action="version", version=f"ctxscope {ctxscope.__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sweep_cmd.add_parser(sub)
    gui_cmd.add_parser(sub)
    estimate_cmd.add_parser(sub)
    maxctx_cmd.add_parser(sub)
    runs_cmd.add_parser(sub)
    report_cmd.add_parsers(sub)
    doctor_cmd.add_parser(sub)
    desktop_cmd.add_parser(sub)
    info_cmd.add_parsers(sub)
    worker_cmd.add_parser(sub)
    return parser


def _freeze_heap() -> None:
    """The program is ending: freeze the heap, so that the interpreter's last garbage
    collections skip the objects torch and transformers created (about a million; their
    traversal was a second of every command's exit on two CPU cores, after its results
    were written and, over SSH, after the worker's last line). Whatever is still
    referenced is finalised as before (files closed and flushed, handlers run); only
    reference cycles are left to the operating system with the rest of the process."""
    gc.freeze()


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the exit code (0 ok, 2 bad input, 130 cancelled, 1 internal).
    Called without ``argv`` it is the program itself (the ``ctxscope`` command,
    ``python -m ctxscope``), whose exit is then made quick (:func:`_freeze_heap`);
    called with a list, as tests and other code in a longer-lived process do, it
    leaves that process's collector alone."""
    if argv is None:
        atexit.register(_freeze_heap)
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        from ctxscope.cli.gui_cmd import display_problem, run_bare

        problem = display_problem()
        if problem is None:
            return run_bare()
        parser.print_help()
        print(f"ctxscope: {problem}", file=sys.stderr)
        return 0
    try:
        return int(args.func(args) or 0)
    except DeviceError as exc:
        print(f"ctxscope: error: {exc}", file=sys.stderr)
        return EXIT_DEVICE
    except CtxscopeError as exc:
        print(f"ctxscope: error: {exc}", file=sys.stderr)
        return exc.exit_code  # 2 (bad input) but for a few, e.g. a remote lost mid-job: 3
    except KeyboardInterrupt:
        print("ctxscope: interrupted", file=sys.stderr)
        return EXIT_CANCELLED
    except BrokenPipeError:  # `ctxscope runs list | head`
        return 0
    except Exception as exc:  # a bug: one line by default, the traceback on request
        if os.environ.get("CTXSCOPE_DEBUG"):
            raise
        print(f"ctxscope: internal error: {type(exc).__name__}: {exc} (set CTXSCOPE_DEBUG=1 for a traceback)",
              file=sys.stderr)
        return EXIT_INTERNAL
