#!/usr/bin/env bash
# The self-blended teacher's recipe on the device machine (docs/gpu_training.md), on the parts that
# train.device_pack wrote and earlier calls left in pack/. Extra arguments go to train.train (a dry run here:
# --max-steps 2 --num-workers 1 --mixed-precision no). Writes the best epoch and the run's record to $OUT.
set -euo pipefail
: "${OUT:?OUT is the folder whose files come back}"
BUDGET_S=${BUDGET_S:-450}  # the training's wall-clock limit, inside the call's 600 s
RUN=runs/teacher-sbi-gpu/sbi
WHEELS=${WHEELS-pack/wheels}  # datasets and its two pure-Python needs, absent there (a dry run here: WHEELS=)

if [ -n "$WHEELS" ]; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site "$WHEELS"/*.whl
  export PYTHONPATH=/tmp/site:${PYTHONPATH:-}
fi
export PYTHONPATH=$PWD:${PYTHONPATH:-} PYTHONUNBUFFERED=1

python3 -m train.device_pack --merge pack
command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader

set +e
# progress bars out of the log: what is kept is the set-up, one JSON row per epoch and any error
timeout "$BUDGET_S" python3 -m train.train --config train/configs/candidates/teacher-sbi-gpu.toml "$@" 2>&1 \
  | tr '\r' '\n' | grep --line-buffered -v -E '(it/s|s/it)[],]|^\s*$' | tee "$OUT/train.log"
status=${PIPESTATUS[0]}
set -e
echo "train.train exit status $status (124: stopped at BUDGET_S=$BUDGET_S s; the best finished epoch is kept)" \
  | tee -a "$OUT/train.log"
[ -f "$RUN/best/model.safetensors" ] || { echo "no finished epoch: nothing to bring back" >&2; exit 1; }
mkdir -p "$OUT/best"
cp "$RUN"/best/* "$OUT/best/"
cp "$RUN/summary.csv" "$RUN/recipe.json" "$OUT/"
