"""``ctxscope estimate MODEL``: analytic figures per length, without loading weights."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from ctxscope.core.blocks import AnalyticBlock
from ctxscope.core.errors import BadInputError, ModelLoadError


def add_parser(sub: Any) -> None:
    p = sub.add_parser("estimate", help="predict memory and FLOPs per length from the config (no weights loaded)")
    p.add_argument("model", help="Hub id (cached), local directory, config.json or preset:NAME")
    p.add_argument("--dtype", default="auto", choices=("auto", "float32", "float16", "bfloat16"),
                   help="auto: what a sweep would use — float32 when the prediction is for this CPU; the "
                        "checkpoint's half type (else bfloat16) for a GPU (here or --gpu)")
    p.add_argument("--lengths", default="1k:32k:x2")
    p.add_argument("--batch", type=int, default=1)
    p.add_argument("--revision", default=None)
    p.add_argument("--trust-remote-code", action="store_true")
    p.add_argument("--gpu", default=None,
                   help="predict latency for this GPU: a data-sheet name such as 'H100 SXM', 'A100 80GB SXM', 'L4' "
                        "(default: this machine's first GPU, measured with `ctxscope env --probe` or its data sheet)")
    p.add_argument("--cache", default="dynamic", metavar="STRATEGY[,STRATEGY…]",
                   help="also predict the KV bytes of these cache strategies (fp8, int4, int2, static, offload), "
                        "e.g. dynamic,fp8,int4")
    p.add_argument("--kv-group-size", type=int, default=None, metavar="N",
                   help="--cache int4/int2: values per quantization group (default 64)")
    p.add_argument("--format", choices=("table", "json"), default="table")
    p.set_defaults(func=run)


def auto_dtype(config: Any, for_gpu: bool) -> str:
    """The dtype a sweep would pick: ``--dtype auto`` is float32 on a CPU, the checkpoint's
    half type (else bfloat16) on a GPU — an estimate must predict the same thing."""
    if not for_gpu:
        return "float32"
    declared = str(getattr(config, "dtype", None) or getattr(config, "torch_dtype", None) or "").removeprefix("torch.")
    return declared if declared in ("float16", "bfloat16") else "bfloat16"


def estimate(model: str, dtype: str, lengths: tuple[int, ...], batch: int = 1, *, revision: str | None = None,
             trust_remote_code: bool = False, for_gpu: bool = False) -> dict[str, Any]:
    """The analytic figures as plain data (bytes, FLOPs). ``dtype`` ``"auto"`` resolves
    as a sweep would (``for_gpu``: the prediction is for a GPU)."""
    from ctxscope.core.predict import analytic
    from ctxscope.core.model.loading import load_config
    from ctxscope.core.model.modelinfo import text_config
    from ctxscope.core.spec import ModelSpec

    spec = ModelSpec(model, revision=revision, random_weights=True, trust_remote_code=trust_remote_code)
    config = load_config(spec)
    if getattr(config, "is_encoder_decoder", False):
        raise ModelLoadError(f"{model}: encoder-decoder models are not described by the analytic model yet")
    try:
        arch = analytic.describe_config(config)
    except (AttributeError, TypeError, ValueError) as exc:
        raise ModelLoadError(f"{model}: the analytic model cannot describe this config ({exc})") from None
    if dtype == "auto":
        dtype = auto_dtype(config, for_gpu)
    max_positions = getattr(text_config(config), "max_position_embeddings", None)
    rows = [{"length": n, "kv_cache_bytes": analytic.kv_bytes(arch, n, dtype, batch),
             "prefill_flops": analytic.prefill_flops(arch, n, batch),
             "decode_flops": analytic.decode_flops(arch, n, batch) if arch.is_decoder else None,
             "decode_bytes": analytic.decode_bytes(arch, n, dtype, batch) if arch.is_decoder else None,
             "beyond_max_positions": bool(max_positions and n > max_positions)} for n in lengths]
    return {"model": model, "dtype": dtype, "batch": batch, "params": arch.params, "max_positions": max_positions,
            "active_params": arch.active_params, "layer_kinds": analytic.kinds_summary(arch),
            "weights_bytes": analytic.weights_bytes(arch, dtype),
            "state_bytes": analytic.state_bytes(arch, dtype, batch),
            "kv_bytes_per_token": analytic.kv_bytes_per_token(arch, dtype),
            "sliding_windows": sorted({layer.window for layer in arch.kv_layers if layer.window}),
            "notes": list(arch.notes), "lengths": rows}


def add_strategies(result: dict[str, Any], config_source: str, strategies: tuple[str, ...], group_size: int | None,
                   *, revision: str | None = None, trust_remote_code: bool = False) -> None:
    """Predicted KV bytes per strategy (:mod:`ctxscope.core.predict.kv_analytic`), per length and
    per token; a strategy the model's layers cannot use is refused with the reason."""
    from ctxscope.core.predict import analytic
    from ctxscope.core.predict.kv_analytic import strategy_kv_bytes, strategy_kv_per_token
    from ctxscope.core.measure.kv_cache import KVOptions, check_options, layer_types_of, refusal
    from ctxscope.core.model.loading import load_config
    from ctxscope.core.spec import ModelSpec

    extra = tuple(s for s in strategies if s != "dynamic")
    if not extra:
        return
    config = load_config(ModelSpec(config_source, revision=revision, random_weights=True,
                                   trust_remote_code=trust_remote_code))
    arch = analytic.describe_config(config)
    options = KVOptions(group_size=group_size)
    check_options(extra, options)
    for strategy in extra:
        # The device is a GPU's for offload: the prediction says what it would hold there.
        reason = refusal(strategy, layer_types_of(config), "cuda", is_decoder=arch.is_decoder)
        if reason is not None:
            raise BadInputError(reason)
    dtype = result["dtype"]
    result["kv_bytes_per_token_by_cache"] = {s: strategy_kv_per_token(arch, dtype, s, options) for s in extra}
    for row in result["lengths"]:
        row["kv_cache_bytes_by_cache"] = {s: strategy_kv_bytes(arch, row["length"], dtype, s, batch=result["batch"],
                                                               options=options) for s in extra}


def _peak(name: str | None) -> Any:
    from ctxscope.core.machine.hardware import from_table, peak_for, table_names

    if name is not None:
        peak = from_table(name)
        if peak is None:
            raise BadInputError(f"--gpu {name!r}: not in the table ({', '.join(table_names())})")
        return peak
    import torch

    return peak_for(torch.cuda.get_device_name(0)) if torch.cuda.is_available() else None


def _has_cuda() -> bool:
    import torch

    return bool(torch.cuda.is_available())


def add_predictions(result: dict[str, Any], peak: Any) -> None:
    """Roofline lower-bound latency per length (ms) for ``peak`` (see core.efficiency)."""
    from ctxscope.core.predict.efficiency import predicted_ms

    result["peak"] = None if peak is None else {"name": peak.name, "flops": dict(peak.flops),
                                                "bytes_per_s": peak.bytes_per_s, "source": peak.source}
    # The estimate's rows are per this batch already: the block is read at batch 1.
    block: AnalyticBlock = {"weights_bytes": result["weights_bytes"], "rows": result["lengths"], "peak": result["peak"]}
    for row in result["lengths"]:
        for mode in ("prefill", "decode"):
            row[f"predicted_{mode}_ms"] = predicted_ms(block, result["dtype"], mode, row["length"], 1)


def run(args: argparse.Namespace) -> int:
    from ctxscope.core.lengths import parse_lengths

    if args.batch < 1:
        raise BadInputError(f"--batch must be at least 1, not {args.batch}")
    peak = _peak(args.gpu)
    result = estimate(args.model, args.dtype, parse_lengths(args.lengths), args.batch, revision=args.revision,
                      trust_remote_code=args.trust_remote_code, for_gpu=peak is not None or _has_cuda())
    add_predictions(result, peak)
    from ctxscope.core.measure.kv_cache import parse_caches

    add_strategies(result, args.model, parse_caches(args.cache), args.kv_group_size, revision=args.revision,
                   trust_remote_code=args.trust_remote_code)
    if args.format == "json":
        print(json.dumps(result, indent=1))
        return 0
    from rich.console import Console
    from rich.table import Table

    from ctxscope.report.fmt import fmt_bytes, fmt_count, fmt_layer_mix, fmt_ms, fmt_rate

    console = Console(highlight=False, soft_wrap=True, width=None if sys.stdout.isatty() else 160)
    windows = f", sliding windows keep {result['sliding_windows']} tokens" if result["sliding_windows"] else ""
    dtype = result["dtype"]
    why = "" if args.dtype != "auto" else " (auto: what a sweep on this CPU uses)" if dtype == "float32" else \
        " (auto: the half type a GPU sweep uses)"
    active = (f" ({fmt_count(result['active_params'])} active per token)"
              if result["active_params"] != result["params"] else "")
    state = (f"; recurrent state {fmt_bytes(result['state_bytes'])} (the same at every length)"
             if result["state_bytes"] else "")
    console.print(f"{args.model}: {fmt_count(result['params'])} parameters{active}, weights "
                  f"{fmt_bytes(result['weights_bytes'])} in {dtype}{why}; KV cache {result['kv_bytes_per_token']:,} "
                  f"bytes per token{windows}{state}")
    mix = fmt_layer_mix([k for k, n in result["layer_kinds"].items() for _ in range(n)])
    if mix:
        console.print(f"layers: {mix}")
    table = Table(caption="Analytic (from the config; nothing run). FLOPs: 2 per multiply–add; prefill keeps "
                          "last-position logits.")
    cached = "weights + KV + state" if result["state_bytes"] else "weights + KV"
    by_cache = list(result.get("kv_bytes_per_token_by_cache", {}))
    cols = ["length", "KV cache", *(f"KV {s}" for s in by_cache), cached, "prefill TFLOP", "decode GFLOP/token",
            "decode bytes/token"]
    if peak is not None:
        cols += ["prefill ≥ ms", "decode ≥ ms/token"]
    for col in cols:
        table.add_column(col, justify="right")
    for r in result["lengths"]:
        cells = [f"{r['length']}{' *' if r['beyond_max_positions'] else ''}", fmt_bytes(r["kv_cache_bytes"]),
                 *(fmt_bytes(r["kv_cache_bytes_by_cache"][s]) for s in by_cache),
                 fmt_bytes(result["weights_bytes"] + r["kv_cache_bytes"] + result["state_bytes"]),
                 f"{r['prefill_flops'] / 1e12:,.3f}",
                 f"{r['decode_flops'] / 1e9:,.2f}" if r["decode_flops"] is not None else "-",
                 fmt_bytes(r["decode_bytes"]) if r["decode_bytes"] is not None else "-"]
        if peak is not None:
            cells += [fmt_ms(r["predicted_prefill_ms"]), fmt_ms(r["predicted_decode_ms"])]
        table.add_row(*cells)
    console.print(table)
    for s, per_token in result.get("kv_bytes_per_token_by_cache", {}).items():
        console.print(f"--cache {s}: {per_token:,.1f} bytes per token, {result['kv_bytes_per_token'] / per_token:.2f}× "
                      f"the context of the default cache in the same KV memory (predicted; a sweep counts it from the "
                      f"cache's storage)")
    if any(r["beyond_max_positions"] for r in result["lengths"]):
        console.print(f"* beyond the model's {result['max_positions']} positions: it was not trained that long "
                      "(a sweep needs --allow-beyond-max; learned position tables cannot go there at all).")
    if peak is not None:
        console.print(f"Latency lower bound = max(FLOPs ÷ peak, bytes ÷ bandwidth) on {peak.name}: "
                      f"{fmt_rate(peak.flops_for(dtype))} {dtype}, {fmt_rate(peak.bytes_per_s, 'B/s')} "
                      f"({peak.source}). Real kernels reach a fraction of it.")
    else:
        console.print("No latency prediction: no GPU here and no --gpu given (e.g. --gpu 'H100 SXM').")
    return 0
