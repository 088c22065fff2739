#!/usr/bin/env bash
# Rehearse the GPU check on the GPU host's own software, on this (CPU) machine:
#   1. a fresh venv holding, at the host's versions (bench/gpu-host.txt), the packages of
#      that host that ctxscope's core, CLI and tests can import — and nothing the host
#      lacks (no platformdirs, Qt, pyqtgraph, superqt, gguf; ctxscope itself not installed);
#   2. the preparation step (bench/gpu_prepare.py) for this venv's Python;
#   3. bench/gpu_check.sh in CPU mode with those wheels, from the source tree.
# Every step must exit 0. Its figures are CPU figures from a rehearsal, never GPU figures.
#
#   bash bench/gpu_rehearse.sh            # work files in a temporary folder, removed after
#
# Deviations from the host, forced by what this machine can install: torch is 2.13.0's CPU
# build (the host has 2.11's CUDA build; no CPU build of 2.11 is reachable here), Python is
# the one that torch file is for (3.11; the host has 3.12), and numpy falls back to the
# newest release for that Python when the host's version has none.
set -uo pipefail
cd "$(dirname "$0")/.."
repo=$(pwd)
PYBASE=${PYBASE:-python3}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
unset PIP_CONSTRAINT
summary() { printf '%-10s rc=%-3s %s\n' "$1" "$2" "$3"; }

# The host's packages that the core, CLI and tests could import (its full list: gpu-host.txt).
importable=(transformers accelerate huggingface-hub safetensors tokenizers numpy nvidia-ml-py psutil rich jinja2
            matplotlib pytest pytest-timeout)
absent=(platformdirs PySide6 shiboken6 pyqtgraph superqt gguf pytest-qt ctxscope)
pin() {  # the host's NAME==VERSION line, or the bare NAME where its version was not read
    local line
    line=$(grep -iE "^$1(==|$)" bench/gpu-host.txt | head -1)
    echo "${line:-$1}"
}

t0=$SECONDS
"$PYBASE" -m venv "$work/venv" || { summary venv 1 "python -m venv failed"; exit 1; }
py="$work/venv/bin/python"
{
    "$py" -m pip install -q --upgrade pip
    "$py" -m pip install -q "torch==2.13.0"
    specs=()
    for name in "${importable[@]}"; do specs+=("$(pin "$name")"); done
    if ! "$py" -m pip install -q "${specs[@]}"; then
        # numpy: the host's release may have no wheel for this Python; take the newest that has.
        specs=("${specs[@]/numpy==*/numpy}")
        "$py" -m pip install -q "${specs[@]}"
    fi
} > "$work/venv.log" 2>&1
rc=$?
if [[ $rc -ne 0 ]]; then
    tail -5 "$work/venv.log"
    summary venv "$rc" "installing the host's package set failed"
    exit 1
fi
present=()
for name in "${absent[@]}"; do
    "$py" -m pip show -q "$name" >/dev/null 2>&1 && present+=("$name")
done
if (( ${#present[@]} )); then
    summary venv 1 "the rehearsal venv holds what the host lacks: ${present[*]}"
    exit 1
fi
summary venv 0 "$((SECONDS - t0))s: $("$py" -c 'import sys, torch, transformers, huggingface_hub, numpy
print(f"python {sys.version.split()[0]}, torch {torch.__version__}, transformers {transformers.__version__}, huggingface_hub {huggingface_hub.__version__}, numpy {numpy.__version__}")')"

t0=$SECONDS
pyver=$("$py" -c 'import sys; print(f"{sys.version_info[0]}.{sys.version_info[1]}")')
"$py" bench/gpu_prepare.py --python-version "$pyver" --dest "$work/whl" > "$work/prepare.log" 2>&1
rc=$?
grep -v '^WARNING: Location' "$work/prepare.log"
summary prepare "$rc" "$((SECONDS - t0))s: $(tail -1 "$work/prepare.log")"
[[ $rc -eq 0 ]] || exit 1

t0=$SECONDS
OUT="$work/out" PYTHON="$py" WHEELS="$work/whl" bash bench/gpu_check.sh > "$work/check.log" 2>&1
rc=$?
cat "$work/out/summary.txt" 2>/dev/null
# Every step of the check must pass, not just the script (it reports steps, it does not stop on them).
failed=$(grep -E 'rc=[1-9]' "$work/out/summary.txt" 2>/dev/null | awk '{print $1}' | tr '\n' ' ')
if [[ $rc -ne 0 || -n "$failed" ]]; then
    echo "----- the check's log (last 40 lines) -----"
    tail -40 "$work/out/log.txt" 2>/dev/null || tail -40 "$work/check.log"
    summary check 1 "$((SECONDS - t0))s: failed steps: ${failed:-the script itself (rc=$rc)}"
    exit 1
fi
summary check 0 "$((SECONDS - t0))s: every step rc=0 (CPU figures: a rehearsal, not GPU figures)"
exit 0
