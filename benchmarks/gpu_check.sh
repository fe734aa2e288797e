#!/usr/bin/env bash
# The GPU check, straight through: install the carried wheels, import each package alone (a hang
# is named, not waited out), then time input alone, step alone and whole training (timing.py).
#
#   .venv/bin/python benchmarks/gpu/prepare_wheels.py   # here: -> build/gpu-wheels
#   benchmarks/gpu_check.sh                            # on the device (carry build/gpu-wheels)
#   benchmarks/gpu_check.sh --dry-run                  # all of it here, on the CPU, tiny
#
# PYTHON names the interpreter (default: python3 on the device, .venv/bin/python for --dry-run);
# GPU_WHEELS the wheel folder.
set -euo pipefail
cd "$(dirname "$0")/.."
case "${1:-}" in
  "") dry_run=false ;;
  --dry-run) dry_run=true ;;
  *) echo "gpu_check.sh: unknown option '$1' (the only one is --dry-run)" >&2; exit 2 ;;
esac
wheels=${GPU_WHEELS:-build/gpu-wheels}
export MLFLOW_DISABLE_TELEMETRY=true NO_ALBUMENTATIONS_UPDATE=1 PYTHONUNBUFFERED=1
# What timing.py imports, the heavy ones first; then the check's own modules.
modules=(torch numpy cv2 PIL pandas pyarrow yaml tqdm matplotlib pydantic albumentations
         depthseg.stages.fetch depthseg.stages.index depthseg.engine.loop)

ls "$wheels"/*.whl > /dev/null || { echo "no wheels in $wheels: run prepare_wheels.py" >&2; exit 1; }
if $dry_run; then
  python=${PYTHON:-.venv/bin/python}
  site=$(mktemp -d)
  trap 'rm -rf "$site"' EXIT
  # The device's install, without installing: CPython 3.12 wheels, no index, no dependencies.
  "$python" -m pip install --quiet --dry-run --no-index --no-deps --only-binary=:all: \
    --python-version 3.12 --platform manylinux2014_x86_64 --platform manylinux_2_28_x86_64 \
    --target "$site" "$wheels"/*.whl
  export PYTHONPATH=src
  timing=(--device cpu --sizes 64 --batch 8 --scenes 64 --steps 2 --backgrounds 4 --workers 1)
else
  python=${PYTHON:-python3}
  site=build/gpu-site
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
  started=$SECONDS
  "$python" -m pip install --quiet --no-index --no-deps --target "$site" "$wheels"/*.whl
  echo "wheels installed in $((SECONDS - started)) s"
  export PYTHONPATH=$site:src
  timing=(--device cuda --sizes 96 160 --batch 128)
fi
"$python" --version

hung=()
for module in "${modules[@]}"; do
  started=$SECONDS
  if timeout 60 "$python" -c "import $module"; then
    echo "import $module: ok in $((SECONDS - started)) s"
  else
    status=$?
    [[ $status == 124 ]] && reason="hung past 60 s" || reason="failed (exit $status)"
    echo "import $module: $reason"
    hung+=("$module")
  fi
done
if (( ${#hung[@]} )); then
  echo "cannot go on: ${hung[*]}" >&2
  exit 1
fi
"$python" benchmarks/gpu/timing.py "${timing[@]}"
