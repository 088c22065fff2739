"""Peak memory of the attention capture pass against a plain sdpa forward at the same L,
and against eager ``output_attentions`` where that still fits.

    python bench/attention_memory.py --lengths 4k,16k,32k --out bench/results/attention-memory-cpu.json
    python bench/attention_memory.py --model preset:llama-3.1-8b --device cuda --dtype bfloat16 \
        --lengths 4k,16k,32k --out bench/results/attention-memory-h100.json

Target: capture ≤ 1.25× the sdpa forward's own memory (peak above what was allocated
before the pass), plus the size of the maps. Each variant runs in a fresh process (CPU
peaks are RSS high-water marks, which a previous pass in the same process would
distort); on CUDA the allocator's peak above its pre-pass allocation is used.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

import _common

SMALL_LLAMA = {"architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_size": 256,
               "intermediate_size": 688, "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2,
               "vocab_size": 32000, "max_position_embeddings": 65536, "rope_theta": 500000.0}


def child(model: str, device: str, dtype: str, length: int, variant: str) -> dict:
    import torch

    from ctxscope.core.attention import CaptureConfig, capture
    from ctxscope.core.model.loading import load_model
    from ctxscope.core.measure.memory import PeakMemory
    from ctxscope.core.spec import ModelSpec

    loaded = load_model(ModelSpec(model, device=device, dtype=dtype, attn_implementation="eager"
                                  if variant == "eager" else "sdpa"))
    ids = torch.randint(3, 1000, (1, length), device=loaded.device)
    t0 = time.perf_counter()
    with PeakMemory(loaded.device) as probe:
        with torch.inference_mode():
            if variant == "sdpa":
                out = loaded.model(input_ids=ids, use_cache=False, logits_to_keep=1)
            elif variant == "eager":
                out = loaded.model(input_ids=ids, use_cache=False, logits_to_keep=1, output_attentions=True)
            else:
                out = capture(loaded, ids, CaptureConfig())
    seconds = time.perf_counter() - t0
    maps_bytes = sum(la.maps.nbytes + sum(p.nbytes for p in la.profiles.values()) for la in out.layers) \
        if variant == "capture" else 0
    # The pass's own growth above what was allocated before it (weights, inputs): the
    # raw peak of an 8B model is mostly its 16 GB of weights, which would make any
    # capture look like ~1.0× an sdpa forward.
    if probe.peak_allocated is not None:
        peak, base = probe.peak_allocated, probe.allocated_before
    else:
        peak, base = probe.peak_rss, probe.rss_before
    return {"variant": variant, "length": length, "peak_bytes": peak, "baseline_bytes": base,
            "pass_bytes": peak - base if base is not None else None, "maps_bytes": maps_bytes, "seconds": seconds}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default=None, help="default: a 2-layer small Llama config (random weights)")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--dtype", default="auto")
    ap.add_argument("--lengths", default="4k,16k,32k")
    ap.add_argument("--eager-max", default="8k", help="skip eager output_attentions above this length")
    ap.add_argument("--out", default=None)
    ap.add_argument("--child", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    from ctxscope.core.lengths import parse_lengths, parse_size

    if args.child:
        length, variant = args.child.split(":")
        print(json.dumps(child(args.model, args.device, args.dtype, int(length), variant)))
        return
    model = args.model
    if model is None:
        path = os.path.join(tempfile.mkdtemp(), "config.json")
        with open(path, "w", encoding="utf-8") as fh:
            json.dump(SMALL_LLAMA, fh)
        model = path
    rows = []
    for length in parse_lengths(args.lengths):
        for variant in ("sdpa", "capture", "eager"):
            if variant == "eager" and length > parse_size(args.eager_max):
                rows.append({"variant": "eager", "length": length, "skipped": "O(heads·L²) per layer does not fit"})
                continue
            proc = subprocess.run([sys.executable, __file__, "--model", model, "--device", args.device, "--dtype",
                                   args.dtype, "--child", f"{length}:{variant}"], capture_output=True, text=True,
                                  env={**os.environ, "PYTHONPATH": str(_common.REPO)})
            if proc.returncode != 0:
                rows.append({"variant": variant, "length": length, "failed": proc.stderr.strip().splitlines()[-1]})
                continue
            rows.append(json.loads(proc.stdout.strip().splitlines()[-1]))
    print(f"{'L':>7s} {'variant':8s} {'pass MiB':>10s} {'maps MiB':>9s} {'seconds':>8s} {'vs sdpa':>8s}")
    sdpa = {r["length"]: r for r in rows if r["variant"] == "sdpa" and "pass_bytes" in r}
    for r in rows:
        if "skipped" in r or "failed" in r:
            print(f"{r['length']:7d} {r['variant']:8s} {r.get('skipped') or r.get('failed')}")
            continue
        amount = r["pass_bytes"]
        base = sdpa.get(r["length"])
        ref = base["pass_bytes"] if base else None
        r["ratio_vs_sdpa"] = (amount - r["maps_bytes"]) / ref if ref else None
        print(f"{r['length']:7d} {r['variant']:8s} {amount / 2**20:10.1f} {r['maps_bytes'] / 2**20:9.1f} "
              f"{r['seconds']:8.1f} {r['ratio_vs_sdpa'] or float('nan'):8.2f}")
    _common.write_result(args.out, {"benchmark": "attention_memory", "model": args.model or "small-llama-2layer",
                                    "device": args.device, "device_label": _common.device_label(args.device),
                                    "rows": rows, "target_ratio": 1.25})


if __name__ == "__main__":
    main()
