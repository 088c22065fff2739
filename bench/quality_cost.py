"""What the quality passes cost: wall time of the loss pass and of the needle pass at each
length (the default settings: 4 windows × 256 targets; 5 depths × 3 trials + 3 no-key
trials, and the 3 adjacent controls once), beside one prefill forward at that length.

    python bench/quality_cost.py --model demo:smollm2 --device cpu --lengths 256,512,1024,2048 \
        --out bench/results/quality-cost-cpu.json
    python bench/quality_cost.py --model demo:smollm2 --device cuda --lengths 256:16k:x2 \
        --out bench/results/quality-cost-h100.json

Loss at context C is one forward of C + K − 1 tokens per window; a needle trial one
forward of exactly L tokens. Both are untimed passes inside a sweep (this script times
them only to say how much longer --quality makes a sweep).
"""

from __future__ import annotations

import argparse
import time

import _common  # noqa: F401  (puts the checkout on sys.path)
import torch


def prefill_s(loaded, length: int, device: torch.device) -> float:
    ids = torch.randint(1000, loaded.info.vocab_size, (1, length), device=device)
    with torch.inference_mode():
        loaded.model(input_ids=ids, logits_to_keep=1)  # warm-up at this shape
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        t0 = time.perf_counter()
        loaded.model(input_ids=ids, logits_to_keep=1)
        if device.type == "cuda":
            torch.cuda.synchronize(device)
    return time.perf_counter() - t0


def main() -> None:
    from ctxscope.core.lengths import parse_lengths
    from ctxscope.core.model.loading import load_model
    from ctxscope.core.quality.config import QualityConfig
    from ctxscope.core.quality.records import LossPoint
    from ctxscope.core.quality.run import prepare, run_quality
    from ctxscope.core.spec import ModelSpec

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default="demo:smollm2")
    p.add_argument("--device", default="cpu")
    p.add_argument("--dtype", default="auto")
    p.add_argument("--lengths", default="256,512,1024,2048")
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--out", default=None)
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    loaded = load_model(ModelSpec(args.model, device=args.device, dtype=args.dtype))
    lengths = parse_lengths(args.lengths)
    cfg = QualityConfig()
    t0 = time.perf_counter()
    plan = prepare(loaded, cfg, lengths)
    prepare_s = time.perf_counter() - t0
    rows = []
    print(f"prepare (read and tokenise the text, place windows): {prepare_s:.2f} s")
    print(f"{'L':>7s} {'prefill s':>10s} {'loss pass s':>12s} {'needle pass s':>14s} {'total ÷ prefill':>16s}")
    for length in lengths:
        prefill = prefill_s(loaded, length, loaded.device)
        loss_s = needle_s = 0.0
        gen = run_quality(loaded, plan, length, seed=0, allow_beyond_max=True, continue_after_oom=True, stop=None)
        t = time.perf_counter()
        for event in gen:
            now = time.perf_counter()
            if isinstance(event.item, LossPoint):
                loss_s += now - t
            else:
                needle_s += now - t
            t = time.perf_counter()
        total = loss_s + needle_s
        rows.append({"length": length, "prefill_s": prefill, "loss_pass_s": loss_s, "needle_pass_s": needle_s,
                     "loss_forwards": cfg.windows, "needle_forwards": len(cfg.depths) * cfg.seeds + cfg.seeds
                     + (cfg.seeds if length == lengths[0] else 0), "ratio_to_prefill": total / prefill})
        print(f"{length:7d} {prefill:10.3f} {loss_s:12.2f} {needle_s:14.2f} {total / prefill:16.1f}", flush=True)
    _common.write_result(args.out, {"benchmark": "quality_cost", "model": args.model, "device": str(loaded.device),
                                    "device_label": _common.device_label(str(loaded.device)),
                                    "dtype": str(loaded.dtype), "attn": loaded.attn_implementation,
                                    "threads": torch.get_num_threads(), "prepare_s": prepare_s,
                                    "settings": {"target_tokens": cfg.target_tokens, "windows": cfg.windows,
                                                 "depths": list(cfg.depths), "seeds": cfg.seeds}, "rows": rows})


if __name__ == "__main__":
    main()
