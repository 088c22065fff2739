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
    p.set_defaults(func=run)


def _predicted(loaded: Any, budget: int, dtype: str, batch: int, limit: int) -> int | None:
    """Largest L whose weights + KV cache fit the budget (activations ignored: an upper bound)."""
    from ctxscope.core import analytic

    arch = analytic.describe_config(loaded.config)
    weights = analytic.weights_bytes(arch, dtype)
    lo, hi = 0, limit
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if weights + analytic.kv_bytes(arch, mid, dtype, batch) <= budget:
            lo = mid
        else:
            hi = mid - 1
    return lo or None


def run(args: argparse.Namespace) -> int:
    from ctxscope.cli.common import quiet_transformers
    from ctxscope.core.devices import dtype_name
    from ctxscope.core.loading import check_source, load_model
    from ctxscope.core.maxctx import MaxContext, calibrated_start, parse_bytes, probe_runner, search
    from ctxscope.core.memory import module_bytes
    from ctxscope.core.spec import DTYPES, ModelSpec
    from ctxscope.core.sweep import drive

    if args.granularity < 1:
        raise BadInputError(f"--granularity must be at least 1, not {args.granularity}")
    if args.batch < 1:
        raise BadInputError(f"--batch must be at least 1, not {args.batch}")
    if args.dtype not in DTYPES:
        raise BadInputError(f"unknown dtype {args.dtype!r}: use one of {', '.join(DTYPES)}")
    budget = parse_bytes(args.memory_budget) if args.memory_budget else None
    spec = ModelSpec(args.model, dtype=args.dtype, device=args.device, attn_implementation=args.attn,
                     revision=args.revision, random_weights=args.random_weights, trust_remote_code=args.trust_remote_code)
    check_source(spec)
    quiet_transformers(verbose=False)
    loaded = load_model(spec)
    mode = args.mode or ("prefill" if loaded.info.is_decoder else "forward")
    allowed = ("prefill", "decode") if loaded.info.is_decoder else ("forward",)
    if mode not in allowed:
        raise BadInputError(f"mode {mode!r} does not apply to {args.model} (modes: {', '.join(allowed)})")
    import torch

    weights = module_bytes(loaded.model)
    fraction_set = False
    if loaded.device.type == "cuda":
        free, total = torch.cuda.mem_get_info(loaded.device)
        usable = free + torch.cuda.memory_allocated(loaded.device)
        if budget is None:
            budget = usable
        elif budget < usable:
            torch.cuda.set_per_process_memory_fraction(budget / total, loaded.device)  # enforce the smaller budget
            fraction_set = True
    elif budget is None:
        raise BadInputError("on CPU give --memory-budget (e.g. 8GiB): it is enforced on the measured peak")
    if budget <= weights:
        raise BadInputError(f"the budget ({budget / 2**30:.2f} GiB) is smaller than the weights "
                            f"({weights / 2**30:.2f} GiB)")
    limit = 1 << 22 if args.allow_beyond_max or not loaded.info.max_positions else loaded.info.max_positions
    dtype = dtype_name(loaded.dtype)
    predicted = _predicted(loaded, budget, dtype, args.batch, limit)
    probes: list = []
    table = args.format == "table"

    def show(p: Any) -> None:
        probes.append(p)
        if table:
            peak = f"{p.peak_bytes / 2**30:.2f} GiB" if p.peak_bytes is not None else "-"
            print(f"  probe {len(probes):2d}: L={p.length:<8d} {p.status:12s} peak {peak:>11s}  {p.seconds:6.2f} s",
                  file=sys.stderr)

    runner = probe_runner(loaded, mode, budget, args.batch)
    try:
        start = drive(calibrated_start(runner, granularity=args.granularity, predicted=predicted, budget_bytes=budget,
                                       limit=limit), show)
        ok, bad, at_limit = drive(search(runner, start=start, granularity=args.granularity, limit=limit), show)
    finally:
        if fraction_set:
            torch.cuda.set_per_process_memory_fraction(1.0, loaded.device)
    result = MaxContext(mode=mode, budget_bytes=budget, granularity=args.granularity, predicted=predicted,
                        largest_fit=ok, smallest_fail=bad, probes=tuple(probes), stopped_at_limit=at_limit)
    if not table:
        from dataclasses import asdict

        print(json.dumps({"model": args.model, "device": str(loaded.device), "dtype": dtype, **asdict(result)},
                         indent=1))
        return 0
    answer = "none: even the smallest probe did not fit" if ok is None else (
        f"{ok} tokens" + (" (the model's maximum positions; nothing longer was tried)" if at_limit
                          else f" (fails at {bad}: within {args.granularity})"))
    print(f"{args.model} {mode} on {loaded.device} ({dtype}), batch {args.batch}, budget {budget / 2**30:.2f} GiB")
    print(f"longest context that runs: {answer}")
    if predicted:
        print(f"analytic upper bound (weights + KV cache only, activations ignored): {predicted} tokens")
    return 0
