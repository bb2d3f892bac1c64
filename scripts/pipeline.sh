#!/usr/bin/env bash
# The closed loop, one command per stage or all of them:
#   scripts/pipeline.sh collect|train|export|evaluate|all
# 1 collect:  scripted demonstrations through ROS (sim bridge + scripted expert + recorder) -> LeRobot dataset
# 2 train:    AdaMoE (tiny SmolVLA-style base, privileged cube position in the state) on that dataset
# 3 export:   policy bundle (ONNX + metadata), validated against PyTorch
# 4 evaluate: the policy node drives the sim bridge over ROS on held-out seeds
# Settings come from the environment, with the values that produced the committed demo bundle as defaults.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
source scripts/env.sh

OUT=${OUT:-outputs/pipeline}
DEMOS=${DEMOS:-60}                 # scripted episodes, seeds 0..
STEPS=${STEPS:-3000}
BATCH=${BATCH:-16}
SEED=${SEED:-0}
ROUTING=${ROUTING:-adamoe}
EXPERTS=${EXPERTS:-4}
TOP_K=${TOP_K:-1}
LR_SCALE=${LR_SCALE:-20}
EVAL_EPISODES=${EVAL_EPISODES:-20}  # held-out seeds 2000.. (the ablation used 1000..)
TRAIN_EXTRA=${TRAIN_EXTRA:---set function_preserving_init=true}  # the ablation's best variant
REPO_ID=local/so101_demos

stage=${1:-all}
run_collect() {
  python -m adamoe_ros.closed_loop.collect --root "$OUT/dataset" --episodes "$DEMOS" --first-seed 0 \
    --real-time-factor "${COLLECT_RTF:-1.0}" --repo-id "$REPO_ID"
}
run_train() {
  # shellcheck disable=SC2086
  adamoe-train --dataset-root "$OUT/dataset" --repo-id "$REPO_ID" --output-dir "$OUT/train" --steps "$STEPS" \
    --batch-size "$BATCH" --seed "$SEED" --routing-mode "$ROUTING" --num-experts "$EXPERTS" --top-k "$TOP_K" \
    --lr-scale "$LR_SCALE" --threads "${THREADS:-1}" $TRAIN_EXTRA
}
run_export() {
  adamoe-export "$OUT/train/checkpoints/last/pretrained_model" "$OUT/bundle" --dataset-root "$OUT/dataset"
}
run_evaluate() {
  python -m adamoe_ros.demo --bundle "$OUT/bundle" --episodes "$EVAL_EPISODES" --first-seed 2000 \
    --out "$OUT/eval"
}
case "$stage" in
  collect) run_collect ;;
  train) run_train ;;
  export) run_export ;;
  evaluate) run_evaluate ;;
  all) run_collect && run_train && run_export && run_evaluate ;;
  *) echo "usage: $0 collect|train|export|evaluate|all" >&2; exit 2 ;;
esac
