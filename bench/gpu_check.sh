#!/usr/bin/env bash
# The GPU acceptance check in one call: the GPU test marker and the GPU benches, from
# the source tree, with no network. Budget: under 8 minutes on one H100/H200.
#
#   bash bench/gpu_check.sh                  # results in bench/results/gpu-check/
#   OUT=/some/dir bash bench/gpu_check.sh    # e.g. the device tool's $OUT
#
# On a host without network whose packages are older or missing (the lent GPU host:
# bench/gpu-host.txt), first run `bash bench/gpu_prepare.sh` here and copy .whl/ with the
# tree: this script installs it into a temporary target before anything else.
#
# Writes gpu-<device>.json (every figure, with the environment), summary.txt (one line
# per step) and log.txt (every step's output). Without CUDA it runs the same steps on
# the CPU with small models (a rehearsal: its figures are CPU figures, never GPU ones).
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-bench/results/gpu-check}
mkdir -p "$OUT"
PY=${PYTHON:-python3}
LOG="$OUT/log.txt"
SUMMARY="$OUT/summary.txt"
: > "$LOG"
: > "$SUMMARY"

# What the host lacks travels as wheels (bash bench/gpu_prepare.sh writes .whl/): installed
# into a throwaway target first, ahead of the host's own packages on PYTHONPATH.
WHEELS=${WHEELS:-.whl}
SITE=""
if compgen -G "$WHEELS/*.whl" >/dev/null; then
    SITE=$(mktemp -d)
    if ! $PY -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target "$SITE" \
            "$WHEELS"/*.whl >> "$LOG" 2>&1; then
        echo "gpu_check: installing the wheels of $WHEELS failed (see $LOG)" | tee -a "$SUMMARY"
        exit 1
    fi
    echo "installed $(ls "$WHEELS"/*.whl | wc -l) wheels from $WHEELS into $SITE" | tee -a "$SUMMARY"
fi
export PYTHONPATH="${SITE:+$SITE:}$PWD${PYTHONPATH:+:$PYTHONPATH}" HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 PYTHONUNBUFFERED=1
export KINETO_LOG_LEVEL=6  # the profiler's start/stop lines would fill the log
export CTXSCOPE_HOME
CTXSCOPE_HOME=$(mktemp -d)

# First, in seconds: the versions it will run with, and whether ctxscope imports at all.
# Every later step would fail on the same import otherwise.
if ! $PY bench/gpu_ready.py ${SITE:+"$SITE"} 2>&1 | tee -a "$LOG" "$SUMMARY"; then
    echo "gpu_check: stopped before the first step: ctxscope cannot run on this host (above)" | tee -a "$SUMMARY"
    exit 1
fi

if $PY -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)"; then
    DEVICE=cuda; DTYPE=bfloat16
    SMALL=preset:llama-3.2-1b; BIG=preset:llama-3.1-8b
    FID_LENGTHS=1k,4k,16k; OVH_LENGTHS=512:16k:x2; ATT_LENGTHS=8k,32k; EAGER_MAX=4k
else
    DEVICE=cpu; DTYPE=float32
    SMALL=preset:gpt2; BIG=""  # the attention bench's default small Llama
    FID_LENGTHS=128,256; OVH_LENGTHS=128,256,512; ATT_LENGTHS=1k,2k; EAGER_MAX=1k
fi
# The limits below are the GPU budget (under 8 minutes in all). A CPU rehearsal may share
# its cores with other work (CI, a laptop): it gets three times as long, or
# GPU_CHECK_SCALE times on a machine busier than that (under a load of 4-5 on two cores
# the fidelity and overhead steps ran past three times their limit).
SCALE=1; [[ $DEVICE == cpu ]] && SCALE=${GPU_CHECK_SCALE:-3}

# step NAME SECONDS CMD...: run with a time limit, append output to the log, one line to the summary.
step() {
    local name=$1 limit=$2; shift 2
    local t0=$SECONDS
    echo "===== $name: $*" >> "$LOG"
    timeout "$((limit * SCALE))" "$@" >> "$LOG" 2>&1
    local rc=$?
    printf '%-14s rc=%-3s %4ss  %s\n' "$name" "$rc" "$((SECONDS - t0))" "$*" | tee -a "$SUMMARY"
}

step env 120 $PY -m ctxscope env --probe --format json
step tests 240 $PY -m pytest -c bench/pytest-gpu.ini --rootdir=. -p no:cacheprovider -q -m gpu tests/gpu \
    --junitxml="$OUT/tests.xml"
step fidelity 120 $PY bench/fidelity.py --model "$SMALL" --device "$DEVICE" --dtype "$DTYPE" --attn sdpa \
    --lengths "$FID_LENGTHS" --rounds 3 --out "$OUT/fidelity.json"
step overhead 90 $PY bench/overhead.py --model "$SMALL" --device "$DEVICE" --dtype "$DTYPE" \
    --lengths "$OVH_LENGTHS" --out "$OUT/overhead.json"
step attention 150 $PY bench/attention_memory.py ${BIG:+--model "$BIG"} --device "$DEVICE" --dtype "$DTYPE" \
    --lengths "$ATT_LENGTHS" --eager-max "$EAGER_MAX" --out "$OUT/attention-memory.json"

$PY - "$OUT" "$DEVICE" <<'PY' >> "$LOG" 2>&1
import json, sys, pathlib, platform
out, device = pathlib.Path(sys.argv[1]), sys.argv[2]
import torch
name = torch.cuda.get_device_name(0) if device == "cuda" else "cpu"
slug = "".join(c if c.isalnum() else "-" for c in name.lower()).strip("-")
result = {"device": name, "python": platform.python_version(), "torch": torch.__version__,
          "steps": (out / "summary.txt").read_text().splitlines()}
for part in ("fidelity", "overhead", "attention-memory"):
    path = out / f"{part}.json"
    if path.exists():
        result[part] = json.loads(path.read_text())
        path.unlink()  # folded into the one file (the device tool brings back at most 8)
tests = out / "tests.xml"
if tests.exists():
    import xml.etree.ElementTree as ET
    suite = ET.parse(tests).getroot()
    suite = suite if suite.tag == "testsuite" else suite.find("testsuite")
    result["tests"] = {k: int(suite.get(k, 0)) for k in ("tests", "failures", "errors", "skipped")}
(out / f"gpu-{slug}.json").write_text(json.dumps(result, indent=1) + "\n")
print(f"wrote {out / f'gpu-{slug}.json'}")
PY
cat "$SUMMARY"
