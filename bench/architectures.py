"""Three designs of similar size on one context axis: a dense transformer (Llama), a
hybrid of gated delta-rule linear attention with one full-attention layer in four
(Qwen3.5's text model) and a pure state-space model (Mamba-2) — random weights, the
same hidden size and depth, swept with ``ctxscope sweep`` as a user would (prefill and
decode), then compared (``ctxscope compare``, an HTML comparison).

    python bench/architectures.py --out bench/results/architectures-cpu
    python bench/architectures.py --device cuda --lengths 1k:64k:x2 --out bench/results/architectures-h100

What it shows: the transformer's KV cache grows linearly in L and its prefill super-
linearly; the hybrid's KV is a quarter of it (one layer in four attends) plus a fixed
recurrent state; the SSM holds a fixed state and no KV at all. On a CPU the recurrent
layers run transformers' reference PyTorch code (no mamba-ssm / causal-conv1d /
flash-linear-attention kernels): their *latency* is not what a GPU with those kernels
gives, their *memory* is.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import _common  # noqa: F401  (puts the checkout on sys.path)

HIDDEN, LAYERS, HEADS = 256, 8, 8
MODELS: dict[str, dict[str, object]] = {
    "llama": dict(hidden_size=HIDDEN, intermediate_size=688, num_hidden_layers=LAYERS, num_attention_heads=HEADS,
                  num_key_value_heads=4, head_dim=32, max_position_embeddings=65536),
    "qwen3_5_text": dict(hidden_size=HIDDEN, intermediate_size=688, num_hidden_layers=LAYERS, num_attention_heads=HEADS,
                         num_key_value_heads=4, head_dim=32, linear_num_value_heads=8, linear_num_key_heads=4,
                         linear_key_head_dim=32, linear_value_head_dim=32, linear_conv_kernel_dim=4,
                         max_position_embeddings=65536),
    "mamba2": dict(hidden_size=HIDDEN, num_hidden_layers=LAYERS, state_size=64, expand=2, num_heads=16, head_dim=32,
                   n_groups=1, conv_kernel=4, chunk_size=128),
}
#: The folder each config is written to: ctxscope labels a run by its source's path.
LABELS = {"llama": "transformer-llama", "qwen3_5_text": "hybrid-qwen3.5", "mamba2": "ssm-mamba2"}


def write_config(name: str, root: Path) -> Path:
    from transformers import AutoConfig
    from transformers.models.auto.modeling_auto import MODEL_FOR_CAUSAL_LM_MAPPING_NAMES

    cfg = AutoConfig.for_model(name, vocab_size=8192, **MODELS[name])
    cfg.architectures = [MODEL_FOR_CAUSAL_LM_MAPPING_NAMES[name]]
    folder = root / LABELS[name]
    folder.mkdir(parents=True, exist_ok=True)
    cfg.save_pretrained(folder)
    return folder / "config.json"


def ctxscope(*argv: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    # Run in the output folder with relative config paths: a run is labelled by its source
    # as given, and "hybrid-qwen3.5/config.json" reads better than a temporary path.
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(_common.REPO), os.environ.get("PYTHONPATH")]))}
    return subprocess.run([sys.executable, "-m", "ctxscope", *argv], capture_output=True, text=True, cwd=cwd, env=env)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--lengths", default="256,512,1k,2k,4k,8k")
    ap.add_argument("--out", required=True, help="a folder: the configs, the three run files, the comparison")
    ap.add_argument("--repeats", default="3", help="--min-repeats and --max-repeats of each point")
    args = ap.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    runs, summary = [], {}
    for name in MODELS:
        config = write_config(name, out)
        run_file = out / f"{name}.json"
        t0 = time.perf_counter()
        done = ctxscope("sweep", str(config.relative_to(out)), "--device", args.device, "--lengths", args.lengths, "--mode",
                        "prefill,decode", "--min-repeats", args.repeats, "--max-repeats", args.repeats,
                        "--out", run_file.name, "--no-store", "--quiet", cwd=out)
        wall = time.perf_counter() - t0
        if done.returncode != 0:
            print(f"{name}: sweep failed (exit {done.returncode}): {done.stderr.strip()[-400:]}", file=sys.stderr)
            return 1
        run = json.loads(run_file.read_text())
        runs.append(run_file.name)
        summary[name] = {"label": LABELS[name], "wall_s": round(wall, 1), "layer_kinds": run["model"].get("layer_kinds"),
                         "mixer_fallback": run["environment"].get("mixer_fallback"),
                         "points": [{"mode": p["mode"], "length": p["length"], "status": p["status"],
                                     "median_ms": (p.get("latency_ms") or {}).get("median"),
                                     "kv_cache_bytes": (p.get("memory") or {}).get("kv_cache_bytes"),
                                     "state_bytes": (p.get("memory") or {}).get("state_bytes"),
                                     "contention": p.get("contention")} for p in run["points"]]}
        print(f"{name}: {wall:.0f} s", file=sys.stderr)
    compare = ctxscope("compare", *runs, cwd=out)
    (out / "compare.txt").write_text(compare.stdout, encoding="utf-8")
    report = ctxscope("report", *runs, "--out", "comparison.html", cwd=out)
    if compare.returncode or report.returncode:
        print(f"compare/report failed: {compare.stderr or report.stderr}", file=sys.stderr)
        return 1
    from _common import device_label, write_result

    write_result(str(out / "summary.json"), {"device": args.device, "device_label": device_label(args.device),
                                             "lengths": args.lengths, "models": summary})
    print(compare.stdout)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
