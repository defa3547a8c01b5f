#!/usr/bin/env bash
# GPU check (issue 17): trains the speech tokenizer, the image tokenizer and the LM for a few
# hundred steps each (bf16 on CUDA) and prints steps/s, samples or tokens/s, peak GPU memory,
# MFU against the chip's measured bf16 matmul peak and the share of the step waiting for data.
# About 5 minutes on one recent GPU with the defaults; runs on a CPU too (fp32), which is how
# the tests check it. Options go to benchmarks/gpu_check.py (--help lists them), e.g.
#   bash benchmarks/gpu_check.sh --steps 300 --out gpu_check.json
# PYTHON=... picks the interpreter; without it the project's .venv is made (make install).
set -euo pipefail
cd "$(dirname "$0")/.."
if [ -z "${PYTHON:-}" ]; then
  make --quiet install
  PYTHON=.venv/bin/python
fi
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>/dev/null || true
exec "$PYTHON" benchmarks/gpu_check.py "$@"
