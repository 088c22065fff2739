#!/usr/bin/env bash
# Download, here, the wheels the GPU host lacks (bench/gpu_prepare.py says which and why)
# into .whl/ (ignored by git), for CPython 3.12 manylinux x86-64; prints the total size.
#
#   bash bench/gpu_prepare.sh                          # then copy the tree with .whl/ to the host
#   bash bench/gpu_prepare.sh --python-version 3.11 --dest /tmp/w   # for another Python
#
# Needs pip and `packaging` (any environment that has ctxscope installed has both).
set -euo pipefail
cd "$(dirname "$0")/.."
exec "${PYTHON:-python3}" bench/gpu_prepare.py "$@"
