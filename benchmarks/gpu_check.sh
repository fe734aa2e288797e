#!/usr/bin/env bash
# The GPU check: short trainings on the built-in data on a CUDA machine, one line of figures each.
set -euo pipefail

usage() {
  cat <<'TEXT'
Usage: benchmarks/gpu_check.sh [--epochs N] [--scenes N] [--workers N] [--out FILE]

On a machine with CUDA GPUs, trains DSResNet on the built-in dataset (params.yaml's data) for a
few epochs at 96 and 160 px, batch 128 (global), in bf16 and in fp16, then once more at 96 px in
bf16 with torch.compile, on 1 GPU and, when the machine has two or more, on 2 GPUs with
torchrun. For each it prints samples/s of the last epoch, peak GPU memory of rank 0, and the
last epoch's validation mask IoU and depth RMSE, and appends them to a CSV.

It works in a temporary copy of the project (the repository's own outputs are left alone),
with a throw-away MLflow store. Run it from the repository root with the project's venv active.

  --epochs N   epochs per training (default 2)
  --scenes N   scenes per epoch (default 10240: 80 steps of 128)
  --workers N  loader worker processes per GPU (default: the cores less 2, at least 1)
  --out FILE   the CSV of results (default: results/gpu_check.csv)
  -h, --help   this text
TEXT
}

epochs=2
scenes=10240
workers=$(( $(nproc) > 3 ? $(nproc) - 2 : 1 ))
out="results/gpu_check.csv"
while [ $# -gt 0 ]; do
  case "$1" in
    --epochs) epochs="$2"; shift 2 ;;
    --scenes) scenes="$2"; shift 2 ;;
    --workers) workers="$2"; shift 2 ;;
    --out) out="$2"; shift 2 ;;
    -h|--help) usage; exit 0 ;;
    *) echo "gpu_check.sh: unknown option '$1' (see --help)" >&2; exit 2 ;;
  esac
done

# An offline machine once hung on these imports for the whole of its lease: fail fast instead.
export MLFLOW_DISABLE_TELEMETRY=true
if ! timeout 120 python -c "import torch, mlflow, albumentations, pydantic"; then
  echo "gpu_check.sh: importing torch, mlflow, albumentations and pydantic failed or took over" \
       "120 s with $(command -v python); install requirements.txt into this python first" >&2
  exit 1
fi
gpus=$(python -c "import torch; print(torch.cuda.device_count())")
if [ "$gpus" -lt 1 ]; then
  echo "gpu_check.sh: PyTorch sees no CUDA GPU here (torch.cuda.device_count() is 0)" >&2
  exit 1
fi
repo=$(pwd)
out=$(realpath -m "$out")
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cp -r src dvc.yaml params.yaml "$work"/
cd "$work"
export MLFLOW_TRACKING_URI="sqlite:///$work/mlflow.db" PYTHONPATH="$work/src${PYTHONPATH:+:$PYTHONPATH}"
python -c "import torch; print(torch.__version__, torch.cuda.get_device_name(0), '| GPUs:', torch.cuda.device_count())"
python src/fetch.py --workers "$(nproc)" && python src/index.py

mkdir -p "$(dirname "$out")"
[ -f "$out" ] || echo "gpu,gpus,size,precision,compile,batch,samples_per_s,peak_memory_mb,val_mask_iou,val_depth_rmse" > "$out"
gpu_name=$(python -c "import torch; print(torch.cuda.get_device_name(0).replace(',', ' '))")
train_once() {  # processes size precision compile: one training, one CSV row
  local processes=$1 size=$2 precision=$3 compile=$4
  local settings=(-S train.device=cuda -S "train.precision=$precision" -S "train.epochs=$epochs"
                  -S "train.image_sizes=[$size]" -S "train.batch_size=$((128 / processes))"
                  -S "train.scenes_per_epoch=$scenes" -S "train.workers=$workers"
                  -S "train.compile=$compile" -S train.resume=false)
  if [ "$processes" -eq 1 ]; then
    python src/train.py "${settings[@]}" > train.log 2>&1
  else
    torchrun --standalone --nproc_per_node="$processes" src/train.py "${settings[@]}" > train.log 2>&1
  fi || { echo "gpu_check.sh: training failed ($processes GPUs, $size px, $precision, compile $compile):" >&2
          tail -n 30 train.log >&2; return 1; }
  python - "$gpu_name" "$processes" "$size" "$precision" "$compile" <<'PY' | tee -a "$out"
import json, sys
gpu, processes, size, precision, compile_ = sys.argv[1:]
metrics = json.load(open("results/train/metrics.json"))
final = metrics["final"]
print(f"{gpu},{processes},{size},{precision},{compile_},128,{final['samples_per_s']:.0f},"
      f"{metrics['peak_device_memory_mb']:.0f},{final['val_mask_iou']:.4f},"
      f"{final['val_depth_rmse']:.4f}")
PY
}

failed=0
for processes in 1 2; do
  [ "$processes" -le "$gpus" ] || continue
  for size in 96 160; do
    for precision in bf16 fp16; do
      train_once "$processes" "$size" "$precision" false || failed=1
    done
  done
  train_once "$processes" 96 bf16 true || failed=1
done
echo "gpu_check.sh: results in $out (from $repo)"
exit "$failed"
