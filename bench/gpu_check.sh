#!/usr/bin/env bash
# GPU checks for a session lent the GPU machine (no internet there; torch, transformers, peft and accelerate
# are installed, trl and datasets are not). Under 8 minutes on an H100/H200: two shapes (SmolLM2-135M, then
# Llama-3.2-1B with examples up to 1,024 tokens), each local vs trl defaults vs trl's best stock setting (vs Unsloth).
#
# Prepare here (with internet), then run there:
#   python bench/finetune_gpu.py --prepare          # bench/gpu_assets: SmolLM2 config + tokenizer (a few MB)
#   pip download --no-deps -d bench/wheels trl datasets pydantic pydantic-core annotated-types typing-inspection \
#       pyyaml platformdirs psutil dill multiprocess xxhash fsspec liger-kernel
#   (first list what the machine has, e.g. `pip list` in a short run, and drop what it already has: carry is
#   64 MiB in all. Measured 2026-12-03 for Python 3.11: these come to 7 MB, but datasets also needs pyarrow
#   (55 MB) and pandas (12.4 MB); if the machine lacks both, leave out liger-kernel and the Unsloth arm and carry
#   pyarrow first: the 64 MiB do not hold everything. bench/gpu_assets adds 3.6 MB.)
#   For the Unsloth arm also: pip download --no-deps -d bench/wheels unsloth unsloth_zoo tyro   (~32 MB; it needs
#   bitsandbytes, ~60 MB, and xformers from the machine itself: with them missing, the JSON's `not_measured` says so
#   and local vs TRL defaults are still measured)
#   run: bash bench/gpu_check.sh  with carry: [bench/gpu_assets, bench/wheels]
# Output: bench/results/finetune_gpu.json and finetune_gpu_llama1b.json: tokens/s, step time, peak memory, MFU,
# the loss curves, and the settings the local tuner chose (micro-batch, checkpointing, padding-free, Liger).
# Dry path on a machine without a GPU: bash bench/gpu_check.sh --device cpu
set -euo pipefail
cd "$(dirname "$0")/.."
DEVICE=cuda
if [ "${1:-}" = "--device" ]; then DEVICE="$2"; fi
export HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
if ! python -c "import trl, datasets, pydantic, yaml, platformdirs, psutil" 2>/dev/null; then
  python -m pip install --quiet --no-index --find-links bench/wheels --no-deps bench/wheels/*.whl
fi
test -f bench/gpu_assets/config.json || python bench/finetune_gpu.py --prepare
if [ "$DEVICE" = cuda ]; then
  nvidia-smi --query-gpu=name,memory.total --format=csv,noheader || true
  python bench/finetune_gpu.py --device cuda --shape smollm2 --n 512
  python bench/finetune_gpu.py --device cuda --shape llama1b --n 1024
else
  python bench/finetune_gpu.py --device cpu
fi
mkdir -p "${OUT:-bench/results}"
cp bench/results/finetune_gpu*.json "${OUT:-bench/results}/" 2>/dev/null || true
