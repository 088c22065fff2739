"""An independent check of ctxscope's loss vs context: a minimal transformers loop (its
own tokenisation of the shipped text, full logits, ``cross_entropy``), no ctxscope code
on the reference side, compared with a run's recorded per-window loss.

    python bench/quality_reference.py --model DIR --starts 100902,123353,145805,168256 \
        --contexts 256,512,1024,2048,4096,8192 --targets 256 --json ref.json
    python bench/quality_reference.py --compare ref.json RUN.json

``DIR`` is the checkpoint directory (for demo:smollm2, ctxscope's converted copy:
``$CTXSCOPE_HOME/demos/smollm2-135m-instruct``). The window starts are the run's
``settings.quality.window_starts``. Target: |difference| ≤ 1e-3 nats/token at every
context and window.
"""

from __future__ import annotations

import argparse
import gzip
import json
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def reference(model_dir: str, text: str, starts: list[int], contexts: list[int], k: int) -> dict:
    import torch
    import torch.nn.functional as F
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32).eval()
    body = gzip.decompress((REPO / "resources" / "texts" / f"{text}.txt.gz").read_bytes()).decode("utf-8")
    ids = tok(body, add_special_tokens=False)["input_ids"]
    out: dict = {"tokens": len(ids), "starts": starts, "targets": k, "loss": {}, "seconds": {}}
    for c in contexts:
        t0 = time.perf_counter()
        values = []
        for s in starts:
            seq = torch.tensor([ids[s - c:s + k]])  # C tokens of context, then the K targets
            with torch.no_grad():
                logits = model(seq).logits[0]  # every position's logits: the plain way
            values.append(float(F.cross_entropy(logits[c - 1:c + k - 1], seq[0, c:c + k])))
        out["loss"][str(c)] = values
        out["seconds"][str(c)] = time.perf_counter() - t0
        print(f"C={c}: {[round(v, 5) for v in values]} ({out['seconds'][str(c)]:.0f} s)", flush=True)
    return out


def compare(ref_path: str, run_path: str) -> int:
    ref = json.loads(Path(ref_path).read_text())
    run = json.loads(Path(run_path).read_text())
    if run["settings"]["quality"]["window_starts"] != ref["starts"]:
        raise SystemExit("the run's windows differ from the reference's")
    worst = 0.0
    for point in run["quality"]["loss"]:
        values = ref["loss"].get(str(point["context"]))
        if point["status"] != "ok" or values is None:
            continue
        diffs = [abs(a - b) for a, b in zip(point["window_nll"], values)]
        mean_diff = abs(sum(point["window_nll"]) / len(values) - sum(values) / len(values))
        worst = max(worst, *diffs)
        print(f"C={point['context']:>6}: ctxscope {sum(point['window_nll']) / len(values):.5f}  reference "
              f"{sum(values) / len(values):.5f}  |mean diff| {mean_diff:.2e}  max |window diff| {max(diffs):.2e}")
    print(f"largest difference: {worst:.2e} nats/token ({'within' if worst <= 1e-3 else 'OUTSIDE'} 1e-3)")
    return 0 if worst <= 1e-3 else 1


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model")
    p.add_argument("--text", default="pride-and-prejudice")
    p.add_argument("--starts", default="")
    p.add_argument("--contexts", default="256,512,1024,2048,4096,8192")
    p.add_argument("--targets", type=int, default=256)
    p.add_argument("--json", default=None)
    p.add_argument("--compare", nargs=2, metavar=("REF", "RUN"))
    args = p.parse_args()
    if args.compare:
        return compare(*args.compare)
    out = reference(args.model, args.text, [int(s) for s in args.starts.split(",")],
                    [int(c) for c in args.contexts.split(",")], args.targets)
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
