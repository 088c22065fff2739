"""Fidelity: ctxscope's median prefill/decode latency against an independent bare loop —
plain transformers (its own model built from the same config, its own random tokens,
its own CUDA-event timing), no ctxscope code on that side — in the same process.

    python bench/fidelity.py --model preset:gpt2 --device cpu --lengths 128,512
    python bench/fidelity.py --model preset:llama-3.2-1b --device cuda --dtype bfloat16 \
        --lengths 512:32k:x2 --out bench/results/fidelity-h100.json

Target: ratio within ±3% on GPU, ±5% on CPU. Rounds alternate reference and ctxscope
measurements so slow drift (clocks, heat) hits both sides alike. Weights are random on
both sides: dense kernels' latency does not depend on values.
"""

from __future__ import annotations

import argparse
import inspect
import statistics
import time

import _common  # noqa: F401  (puts the checkout on sys.path)
import torch


# -- the reference: what a user would write with transformers alone ---------------------
def bare_model(config_path: str, device: str, dtype: torch.dtype, attn: str | None):
    from transformers import AutoConfig, AutoModelForCausalLM

    config = AutoConfig.from_pretrained(config_path)
    kwargs = {"attn_implementation": attn} if attn else {}
    with torch.device(device):
        model = AutoModelForCausalLM.from_config(config, dtype=dtype, **kwargs)
    return model.eval()


def bare_time_ms(fn, device: torch.device) -> float:
    """One call from an idle device: sync, events around the call, read after sync."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        out = fn()
        end.record()
        end.synchronize()
        ms = start.elapsed_time(end)
    else:
        t0 = time.perf_counter()
        out = fn()
        ms = (time.perf_counter() - t0) * 1e3
    del out
    return ms


def bare_prefill(model, ids, device, n: int) -> list[float]:
    with torch.inference_mode():
        for _ in range(2):  # warm-up
            model(input_ids=ids, use_cache=True, logits_to_keep=1)
        return [bare_time_ms(lambda: model(input_ids=ids, use_cache=True, logits_to_keep=1), device) for _ in range(n)]


def bare_decode(model, ids, device, n: int) -> list[float]:
    from transformers import DynamicCache

    # transformers 5.24 renamed past_key_values to cache; read the name off the model.
    name = "cache" if "cache" in inspect.signature(model.forward).parameters else "past_key_values"
    with torch.inference_mode():
        cache = DynamicCache(config=model.config)
        cache.activate_past_recording()
        model(input_ids=ids, use_cache=True, logits_to_keep=1, **{name: cache})
        tok = ids[:, :1]
        out = []
        for i in range(n + 3):
            ms = bare_time_ms(lambda: model(input_ids=tok, use_cache=True, logits_to_keep=1, **{name: cache}), device)
            cache.crop(-1)
            if i >= 3:  # the first steps settle the cache and warm up
                out.append(ms)
        return out


def main() -> None:
    from ctxscope.core.lengths import parse_lengths
    from ctxscope.core.model.loading import load_model
    from ctxscope.core.measure.measurer import Measurer
    from ctxscope.core.spec import ModelSpec, SweepConfig

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default="preset:gpt2")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--dtype", default="auto")
    ap.add_argument("--attn", default=None)
    ap.add_argument("--lengths", default="128,256,512")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--out", default=None)
    args = ap.parse_args()

    from ctxscope.core.model.loading import load_config

    loaded = load_model(ModelSpec(args.model, device=args.device, dtype=args.dtype, attn_implementation=args.attn))
    device = loaded.device
    cfg = SweepConfig(lengths=parse_lengths(args.lengths))
    measurer = Measurer(loaded, cfg)
    # The reference builds its own model from the same config.json with plain transformers.
    config = load_config(ModelSpec(args.model, random_weights=True))
    config_path = f"/tmp/ctxscope-fidelity-{id(config)}"
    config.save_pretrained(config_path)
    reference = bare_model(config_path, str(device), loaded.dtype, loaded.attn_implementation)
    vocab = loaded.info.vocab_size
    rows = []
    print(f"{'mode':8s} {'L':>7s} {'ctxscope ms':>12s} {'reference ms':>13s} {'ratio':>7s}")
    for length in cfg.lengths:
        ids = torch.randint(min(1000, vocab - 1), vocab, (1, length), device=device)
        for mode in ("prefill", "decode"):
            ours: list[float] = []
            ref: list[float] = []
            for _ in range(args.rounds):
                point = measurer.measure(mode, length)
                ours.append(point.latency_ms.median)
                n = point.latency_ms.n
                samples = bare_prefill(reference, ids, device, n) if mode == "prefill" else \
                    bare_decode(reference, ids, device, n)
                ref.append(statistics.median(samples))
            a, b = statistics.median(ours), statistics.median(ref)
            rows.append({"mode": mode, "length": length, "ctxscope_median_ms": a, "reference_median_ms": b,
                         "ratio": a / b, "ctxscope_round_medians": ours, "reference_round_medians": ref})
            print(f"{mode:8s} {length:7d} {a:12.3f} {b:13.3f} {a / b:7.3f}")
    worst = max(abs(r["ratio"] - 1) for r in rows)
    target = 0.03 if device.type == "cuda" else 0.05
    print(f"worst deviation {worst:.1%} (target ±{target:.0%}): {'MET' if worst <= target else 'NOT MET'}")
    _common.write_result(args.out, {"benchmark": "fidelity", "model": args.model, "device": str(device),
                                    "device_label": _common.device_label(str(device)), "dtype": str(loaded.dtype),
                                    "attn": loaded.attn_implementation, "rows": rows, "worst_deviation": worst,
                                    "target": target, "met": worst <= target})


if __name__ == "__main__":
    main()
