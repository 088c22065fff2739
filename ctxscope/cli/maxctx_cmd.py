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
    p.add_argument("--cache", default="dynamic", metavar="STRATEGY[,STRATEGY…]",
                   help="KV-cache strategy the trials fill: dynamic, static, fp8, int4, int2, offload; a list such as "
                        "dynamic,fp8,int4 answers per strategy, with how much longer each fits than the first")
    p.add_argument("--format", choices=("table", "json"), default="table")
    from ctxscope.cli.remote_args import add_host_options

    add_host_options(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ctxscope.cli.common import quiet_transformers
    from ctxscope.cli.remote_args import launcher
    from ctxscope.core.events import ModelReady
    from ctxscope.core.jobs.job import Job, MaxContextRequest
    from ctxscope.core.jobs.launch import THIS_MACHINE, drive
    from ctxscope.core.model.loading import check_source
    from ctxscope.core.maxctx.search import MaxContext, Trial
    from ctxscope.core.spec import DTYPES, ModelSpec
    from ctxscope.core.units import fmt_bytes, parse_size

    if args.granularity < 1:
        raise BadInputError(f"--granularity must be at least 1, not {args.granularity}")
    if args.batch < 1:
        raise BadInputError(f"--batch must be at least 1, not {args.batch}")
    if args.dtype not in DTYPES:
        raise BadInputError(f"unknown dtype {args.dtype!r}: use one of {', '.join(DTYPES)}")
    budget = parse_size(args.memory_budget, "memory size") if args.memory_budget else None
    from ctxscope.core.measure.kv_cache import check_before_loading, parse_caches

    strategies = parse_caches(args.cache)
    spec = ModelSpec(args.model, dtype=args.dtype, device=args.device, attn_implementation=args.attn,
                     revision=args.revision, random_weights=args.random_weights, trust_remote_code=args.trust_remote_code)
    where = launcher(args, lambda text, always=False: print(text, file=sys.stderr) if always else None)
    here = where.where == THIS_MACHINE
    no_budget = BadInputError("on CPU give --memory-budget (e.g. 8GiB): it is enforced on the measured peak")
    if here:  # elsewhere, sources and devices are the remote's: checked there
        check_source(spec)
        for strategy in strategies:  # from the config, before the weights load
            check_before_loading(spec, strategy)
        if budget is None and args.device == "cpu":
            raise no_budget
        quiet_transformers(verbose=False)
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

    answers = []
    for strategy in strategies:
        if table and len(strategies) > 1:
            print(f"--cache {strategy}:", file=sys.stderr)
        request = MaxContextRequest(mode=args.mode, budget=budget, granularity=args.granularity, batch=args.batch,
                                    allow_beyond_max=args.allow_beyond_max, cache=strategy)
        result = drive(where.run(Job("maxctx", (spec,), maxctx=request)), show)
        if not isinstance(result, MaxContext) or summary is None:
            raise BadInputError("the search ended before it measured anything")
        answers.append((strategy, result))
    device = summary.device if here else f"{where.where} {summary.device}"
    if not table:
        from dataclasses import asdict

        host = {} if here else {"host": where.where}
        found = [{"model": args.model, **host, "device": summary.device, "dtype": summary.dtype, "cache": strategy,
                  **asdict(r)} for strategy, r in answers]
        print(json.dumps(found[0] if len(found) == 1 else found, indent=1))
        return 0
    for strategy, result in answers:
        cache = f", cache {strategy}" if strategy != "dynamic" or len(answers) > 1 else ""
        print(f"{args.model} {result.mode} on {device} ({summary.dtype}{cache}), batch {args.batch}, "
              f"budget {fmt_bytes(result.budget_bytes)}")
        print(result.summary())
    first_name, first = answers[0]
    for strategy, result in answers[1:]:
        if first.largest_fit and result.largest_fit:
            print(f"{strategy}: {result.largest_fit / first.largest_fit:.2f}× the context of {first_name} "
                  f"({result.largest_fit:,} vs {first.largest_fit:,} tokens, within {args.granularity})")
    return 0
