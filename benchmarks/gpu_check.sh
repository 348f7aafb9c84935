#!/usr/bin/env bash
# The GPU check on a machine with a GPU, Python and PyTorch, and no package registry
# (benchmarks/gpu_sweep.py says what it checks). Build the bundle first, on a machine with
# one, from the project's root (the shared builder, plus Optuna and Alembic, plus the parts
# of Ray it drops that Tune imports):
#     python benchmarks/gpu_bundle.py
# then, on the GPU machine, from the checkout's root:
#     bash benchmarks/gpu_check.sh [--only tests|sweep|resnet] [--log-dir DIR]
# Everything it writes goes under $OUT when set (else ./gpu-check): the full log, each
# part's log and Ray's.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ -f .device/activate.sh ]; then
  # shellcheck disable=SC1091
  source .device/activate.sh
fi
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1 RAY_USAGE_STATS_ENABLED=0
out=${OUT:-$PWD/gpu-check}
mkdir -p "$out"
python3 -m cifar_sweeps --help >/dev/null  # the entry point the jobs use, without a console script
set -o pipefail
python3 benchmarks/gpu_sweep.py --results-dir "$out/results" --log-dir "$out" "$@" 2>&1 | tee "$out/gpu_check.log"
