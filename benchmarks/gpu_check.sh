#!/usr/bin/env bash
# The GPU path measured in one go (about 6 minutes on one GPU; seconds on the CPU fallback):
# ViT-B-16 at 224 px with bf16 autocast — training images/s and share of the bf16 peak,
# evaluation images/s, and a 5-task continual run with 2,000 training images per task.
# Without a GPU it runs a tiny model on the CPU, so the script itself stays tested.
#   bash benchmarks/gpu_check.sh [--peak-tflops 989] [--compile] [--device cpu] ...
set -euo pipefail
cd "$(dirname "$0")/.."
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
exec "${PYTHON:-python}" benchmarks/gpu_check.py "$@"
