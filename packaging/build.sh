#!/usr/bin/env bash
# Build a one-folder bundle of ctxscope with PyInstaller: dist/ctxscope/ctxscope.
#
#   bash packaging/build.sh                # CPU torch (TORCH_SPEC, default torch==2.13.0)
#   TORCH_INDEX=https://download.pytorch.org/whl/cu126 TORCH_SPEC=torch bash packaging/build.sh
#
# It builds from a fresh virtual environment (build/bundle-venv): packages that happen to
# be installed elsewhere (scipy, ...) would otherwise be bundled too.
set -euo pipefail
cd "$(dirname "$0")/.."
venv="${VENV:-build/bundle-venv}"
python="${PYTHON:-python3}"

"$python" -m venv --clear "$venv"
"$venv/bin/python" -m pip install --quiet --upgrade pip
"$venv/bin/python" -m pip install --quiet "${TORCH_SPEC:-torch==2.13.0}" ${TORCH_INDEX:+--index-url "$TORCH_INDEX"}
"$venv/bin/python" -m pip install --quiet . "pyinstaller>=6.10"
start=$(date +%s)
(cd packaging && "../$venv/bin/pyinstaller" --noconfirm --clean --log-level WARN \
    --distpath ../dist --workpath ../build/pyinstaller ctxscope.spec)
echo "built dist/ctxscope in $(( $(date +%s) - start )) s: $(du -sh dist/ctxscope | cut -f1)"
# Smoke test: the bundle runs the CLI (no display needed) and finds its resources.
dist/ctxscope/ctxscope --version
dist/ctxscope/ctxscope presets --format json > /dev/null && echo "bundle OK: presets load"
