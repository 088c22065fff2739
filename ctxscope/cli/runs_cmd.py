"""``ctxscope runs list | show ID | export ID | rm ID | import FILE | recover [PATH]``: the run history."""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict
from typing import Any

from ctxscope.cli.common import open_store, output_path
from ctxscope.core.errors import BadInputError


def add_parser(sub: Any) -> None:
    p = sub.add_parser("runs", help="list, show, export or delete stored runs")
    runs = p.add_subparsers(dest="runs_command", metavar="ACTION", required=True, parser_class=type(p))
    ls = runs.add_parser("list", help="list stored runs")
    ls.add_argument("--format", choices=("table", "json"), default="table")
    ls.set_defaults(func=cmd_list)
    show = runs.add_parser("show", help="show one run (id or unique prefix)")
    show.add_argument("id")
    show.add_argument("--format", choices=("table", "json"), default="table")
    show.set_defaults(func=cmd_show)
    export = runs.add_parser("export", help="write one run as JSON (ctxscope.run/1), CSV, HTML or Markdown")
    export.add_argument("id")
    export.add_argument("--format", choices=("json", "csv", "html", "md"), default=None,
                        help="default: from the --out suffix, else json")
    export.add_argument("--out", required=True, help="file to write, or - for stdout")
    export.set_defaults(func=cmd_export)
    rm = runs.add_parser("rm", help="delete a run and its points")
    rm.add_argument("id")
    rm.set_defaults(func=cmd_rm)
    imp = runs.add_parser("import", help="add a run file (e.g. from a GPU server) to the history")
    imp.add_argument("file")
    imp.set_defaults(func=cmd_import)
    rec = runs.add_parser("recover", help="add every run that still reads from a damaged history to this one")
    rec.add_argument("path", nargs="?", default=None,
                     help="a history file (default: every runs-damaged-*.sqlite3 in the data directory)")
    rec.set_defaults(func=cmd_recover)


def cmd_list(args: argparse.Namespace) -> int:
    with open_store() as store:
        runs = store.list_runs()
    if args.format == "json":
        print(json.dumps([asdict(r) for r in runs], indent=1))
        return 0
    from rich.console import Console
    from rich.table import Table

    if not runs:
        print("No runs yet. Start one with: ctxscope sweep preset:gpt2 --device cpu --lengths 64,128")
        return 0
    table = Table()
    for col in ("id", "created", "status", "model", "device", "dtype", "attn", "batch", "points"):
        table.add_column(col)
    for r in runs:
        table.add_row(r.id, r.created.replace("T", " ")[:19], r.status, r.model_source, r.device, r.dtype, r.attn,
                      str(r.batch_size), r.points_text())
    Console(highlight=False, soft_wrap=True, width=None if sys.stdout.isatty() else 160).print(table)
    return 0


def cmd_show(args: argparse.Namespace) -> int:
    from ctxscope.core.serialize import dumps_run

    with open_store() as store:
        run = store.get_run(args.id)
    if args.format == "json":
        print(dumps_run(run))
        return 0
    from rich.console import Console

    from ctxscope.cli.display import points_table
    from ctxscope.report.fmt import fmt_bytes, fmt_count

    m, s, e = run.header.model, run.header.settings, run.header.environment
    console = Console(highlight=False, soft_wrap=True, width=None if sys.stdout.isatty() else 160)
    console.print(f"[bold]run {run.id}[/bold] ({run.status}), created {run.header.created}")
    console.print(f"model    {m.source} — {m.architecture}, {fmt_count(m.params)} params, {m.num_layers} layers, "
                  f"{m.num_heads} heads / {m.num_kv_heads} KV heads × {m.head_dim}"
                  + (" [yellow](random weights)[/yellow]" if m.random_weights else ""))
    console.print(f"settings {s.device} {s.dtype} {s.attn_implementation}, batch {s.batch_size}, modes "
                  f"{','.join(s.modes)}, warm-up {s.warmup}, repeats {s.min_repeats}–{s.max_repeats}, timer {s.timer}")
    gpu = f"{e.gpu_name} ({fmt_bytes(e.gpu_memory_bytes)}), driver {e.driver}, " if e.gpu_name else ""
    console.print(f"machine  {gpu}torch {e.torch}, transformers {e.transformers}, {e.cpu}")
    console.print(points_table(run.points))
    from ctxscope.cli.quality_display import quality_tables

    quality_tables(run, console)  # what context buys, when the run measured it
    from ctxscope.cli.breakdown_display import breakdown_tables

    breakdown_tables(run)  # where the time went, when the run measured it
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from ctxscope.core.predict.predictions import predictions_for
    from ctxscope.report.build import FORMATS, render
    from ctxscope.store.attention_files import maps_path

    path = output_path(args.out, "--out")
    suffix = path.suffix.lower().lstrip(".") if path is not None else ""
    fmt = args.format or (suffix if suffix in FORMATS else "json")
    with open_store() as store:
        run = store.get_run(args.id)
    text = render([run], fmt, maps={run.id: maps_path(run.id)},
                  predictions=predictions_for([run]) if fmt == "html" else None)
    if path is None:
        sys.stdout.write(text)
    else:
        path.write_text(text, encoding="utf-8")
        print(f"wrote {path}", file=sys.stderr)
        if fmt == "json" and run.attention:
            from ctxscope.store.attention_files import copy_beside

            maps = copy_beside(run.id, path)
            if maps is not None:
                print(f"wrote {maps} (attention maps)", file=sys.stderr)
    return 0


def cmd_rm(args: argparse.Namespace) -> int:
    from ctxscope.store.ids import valid_run_id

    with open_store(write=True) as store:
        full = store.resolve(args.id)
        store.delete_run(full)
    note = "" if valid_run_id(full) else " (its id is not a plain file name: no file was touched)"
    print(f"deleted run {full!r}{note}" if note else f"deleted run {full}", file=sys.stderr)
    return 0


def cmd_import(args: argparse.Namespace) -> int:
    from ctxscope.core.serialize import load_run

    run = load_run(args.file)
    with open_store(write=True) as store:
        held = store.save_run(run)  # one transaction: a killed import leaves nothing to refuse next time
    if held is None:
        print(f"imported run {run.id}", file=sys.stderr)
    else:  # the history held the first points of it (it filled up or failed mid-sweep)
        print(f"completed run {run.id} in the history from {args.file}: {len(run.points)} point(s), the history held "
              f"{held}", file=sys.stderr)
    return 0


def cmd_recover(args: argparse.Namespace) -> int:
    from pathlib import Path

    from ctxscope.core.paths import database_path
    from ctxscope.store.opening import damaged_files
    from ctxscope.store.recovery import recover_into

    current = database_path()
    if args.path is not None:
        sources = [Path(args.path).expanduser()]
        if not sources[0].is_file():
            raise BadInputError(f"{args.path}: no such history file")
        if sources[0].resolve() == current.resolve():
            raise BadInputError(f"{args.path} is the current history: give a damaged or another history file")
    else:
        sources = damaged_files(current.parent)
        if not sources:
            print(f"nothing to recover: no runs-damaged-*.sqlite3 in {current.parent}", file=sys.stderr)
            return 0
    with open_store(write=True) as store:
        for source in sources:
            print(recover_into(store, source).line(), file=sys.stderr)
    return 0
