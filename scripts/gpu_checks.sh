#!/usr/bin/env bash
# Every GPU measurement of BENCHMARKS.md in one command, for a GPU machine lent for a few minutes:
# fast.yaml's epoch time and best_gpu.yaml's time to accuracy on seed 42, then best_gpu.yaml on seeds 0
# and 1. Each run's tables are written to OUT_DIR as soon as it ends, so a run cut short keeps the
# ones before it.
#   bash scripts/gpu_checks.sh OUT_DIR
# The data must be in data/ already (`make data`, or the folder data/FashionMNIST/raw carried along),
# and the project importable (`pip install -e .`, or PYTHONPATH=. beside an install of its dependencies).
# GPU_CHECKS_SMOKE=1 runs the same commands for one short epoch each, to check the script on a CPU.
set -euo pipefail
out=${1:?usage: bash scripts/gpu_checks.sh OUT_DIR}
mkdir -p "$out"
python=${PYTHON:-python3}
smoke=()
if [[ -n ${GPU_CHECKS_SMOKE:-} ]]; then
    smoke=(--set trainer.max_epochs=1 --set trainer.limit_train_batches=2 --set trainer.limit_val_batches=1
        --set trainer.limit_test_batches=1)
fi
"$python" -c 'import torch; print("GPU:", torch.cuda.get_device_name() if torch.cuda.is_available() else "none")'
run() {  # run NAME BENCHMARK_ARGS...
    local name=$1
    shift
    PYTHONUNBUFFERED=1 "$python" scripts/benchmark.py --skip-loops "${smoke[@]}" "$@" >"$out/$name.log" 2>&1
    grep -E '^(Machine|Command|\|)' "$out/$name.log" | tee "$out/$name.md"
}
run seed42 --configs configs/fast.yaml configs/fast.yaml,configs/best_gpu.yaml
for seed in 0 1; do
    run "seed$seed" --set "seed_everything=$seed" --configs configs/fast.yaml,configs/best_gpu.yaml
done
