"""``ctxscope maxctx MODEL``: the longest context that runs here, measured."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from ctxscope.core.errors import BadInputError


def add_parser(sub: Any) -> None:
    p = sub.add_parser("maxctx", help="find the longest context that runs within a memory budget (measured)")
    p.add_argument("model")
    p.add_argument("--mode", default=None, help="prefill or decode (decoders; default prefill), forward (encoders)")
    p.add_argument("--dtype", default="auto")
    p.add_argument("--device", default="auto")
    p.add_argument("--attn", default=None)
    p.add_argument("--batch", type=int, default=1)
    p.add_argument("--granularity", type=int, default=256, help="answer within this many tokens (default 256)")
    p.add_argument("--memory-budget", default=None,
                   help="e.g. 20GiB; GPU default: the memory free now (plus the weights); CPU: required")
    p.add_argument("--allow-beyond-max", action="store_true", help="search beyond the model's maximum positions")
    p.add_argument("--random-weights", action="store_true")
    p.add_argument("--revision", default=None)
    p.add_argument("--trust-remote-code", action="store_true")
    p.add_argument("--format", choices=("table", "json"), default="table")
    from ctxscope.cli.remote_args import add_host_options

    add_host_options(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ctxscope.cli.common import quiet_transformers
    from ctxscope.cli.remote_args import launcher
    from ctxscope.core.events import ModelReady
    from ctxscope.core.jobs import Job, MaxContextRequest
    from ctxscope.core.launch import THIS_MACHINE, drive
    from ctxscope.core.loading import check_source
    from ctxscope.core.maxctx import MaxContext, Trial
    from ctxscope.core.spec import DTYPES, ModelSpec
    from ctxscope.core.units import fmt_bytes, parse_size

    if args.granularity < 1:
        raise BadInputError(f"--granularity must be at least 1, not {args.granularity}")
    if args.batch < 1:
        raise BadInputError(f"--batch must be at least 1, not {args.batch}")
    if args.dtype not in DTYPES:
        raise BadInputError(f"unknown dtype {args.dtype!r}: use one of {', '.join(DTYPES)}")
    budget = parse_size(args.memory_budget, "memory size") if args.memory_budget else None
    spec = ModelSpec(args.model, dtype=args.dtype, device=args.device, attn_implementation=args.attn,
                     revision=args.revision, random_weights=args.random_weights, trust_remote_code=args.trust_remote_code)
    where = launcher(args, lambda text, always=False: print(text, file=sys.stderr) if always else None)
    here = where.where == THIS_MACHINE
    no_budget = BadInputError("on CPU give --memory-budget (e.g. 8GiB): it is enforced on the measured peak")
    if here:  # elsewhere, sources and devices are the remote's: checked there
        check_source(spec)
        if budget is None and args.device == "cpu":
            raise no_budget
        quiet_transformers(verbose=False)
    request = MaxContextRequest(mode=args.mode, budget=budget, granularity=args.granularity, batch=args.batch,
                                allow_beyond_max=args.allow_beyond_max)
    table = args.format == "table"
    trials = 0
    summary: Any = None

    def show(event: Any) -> None:
        nonlocal trials, summary
        if isinstance(event, ModelReady):
            summary = event.summary
            if budget is None and not summary.device.startswith("cuda"):
                raise no_budget
        elif isinstance(event, Trial):
            trials += 1
            if table:
                print(f"  {event.line(trials, budget)}", file=sys.stderr)

    result = drive(where.run(Job("maxctx", (spec,), maxctx=request)), show)
    if not isinstance(result, MaxContext) or summary is None:
        raise BadInputError("the search ended before it measured anything")
    device = summary.device if here else f"{where.where} {summary.device}"
    if not table:
        from dataclasses import asdict

        host = {} if here else {"host": where.where}
        print(json.dumps({"model": args.model, **host, "device": summary.device, "dtype": summary.dtype,
                          **asdict(result)}, indent=1))
        return 0
    print(f"{args.model} {result.mode} on {device} ({summary.dtype}), batch {args.batch}, "
          f"budget {fmt_bytes(result.budget_bytes)}")
    print(result.summary())
    return 0
