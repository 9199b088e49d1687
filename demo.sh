#!/usr/bin/env bash
# The whole pipeline on the built-in offline demo data, on the CPU. See usage below.
set -euo pipefail

usage() {
    cat <<'EOF'
usage: ./demo.sh [--clean]

The whole pipeline on the built-in offline demo data, on the CPU:
  demo dataset -> preprocess_data.sh -> train (configs/demo_cpu.json) -> predict_folder.py on the holdout part
  -> evaluate.py
Writes demo_data/ (videos, crops, folds.csv) and demo_output/ (checkpoints, loss.png, predictions.csv, report/,
evidence/: the HTML evidence report of the holdout, one page per video).
Each stage is skipped when its output is complete, so a rerun (or a run after an interruption) goes on where it
stopped.

  --clean  delete demo_data/ and demo_output/ first and start over
EOF
}
cd "$(dirname "$0")"

DATA=demo_data
OUT=demo_output
CONFIG=configs/demo_cpu.json
SEED=111
HOLDOUT_PART=dfdc_train_part_0

case "${1:-}" in
    --clean) rm -rf "$DATA" "$OUT"; shift ;;
    -h|--help) usage; exit 0 ;;
    "") ;;
    *) echo "unknown option: $1 (usage: ./demo.sh [--clean])" >&2; exit 2 ;;
esac

source scripts/ensure_venv.sh
export HF_HUB_OFFLINE=1  # the demo never touches the network
start=$SECONDS
stage() { printf '\n=== %s (%ds) ===\n' "$1" $((SECONDS - start)); }

stage "1/5 demo dataset -> $DATA"
python -m demo.make_demo_dataset "$DATA" --seed 0

stage "2/5 preprocessing (boxes, crops, landmarks, diffs, folds)"
bash preprocess_data.sh "$DATA" --workers "$(nproc)"

stage "3/5 training $CONFIG on folds 1-3 (holdout: fold 0)"
mkdir -p "$OUT/weights"
train=(python training/pipelines/train_classifier.py --config "$CONFIG" --data-dir "$DATA" --fold 0 --seed "$SEED"
       --prefix "demo_${SEED}_" --output-dir "$OUT/weights/" --logdir "$OUT/logs" --workers 1)
checkpoint="$("${train[@]}" --print-checkpoint)"   # the trainer's own naming rule
# --resume last continues an interrupted training, and ends at once when every epoch is done.
"${train[@]}" --resume last
python plot_loss.py --metrics "$OUT/logs/$(basename "${checkpoint%_last}")/metrics.csv" \
    --out "$OUT/loss.png" --min-epoch -1

stage "4/5 predicting the holdout part $HOLDOUT_PART with the last checkpoint"
# The checkpoint's model card gives the encoder, input size and frames per video. predict_folder.py resumes
# by itself: finished videos are skipped on a rerun.
python predict_folder.py --weights-dir "$(dirname "$checkpoint")" --models "$(basename "$checkpoint")" \
    --test-dir "$DATA/$HOLDOUT_PART" --output "$OUT/predictions.csv" --save-crops "$OUT/crops" \
    --report "$OUT/evidence"

stage "5/5 evaluation"
python evaluate.py --predictions "$OUT/predictions.csv" --labels "$DATA/$HOLDOUT_PART/metadata.json" \
    --out-dir "$OUT/report"
echo
echo "Demo finished in $((SECONDS - start)) s."
echo "  loss curve:       $OUT/loss.png (red: the original's checkpoint pick; x: the _last checkpoint step 4 used)"
echo "  ROC curve:        $OUT/report/roc.png"
echo "  score histogram:  $OUT/report/hist.png"
echo "  HTML report:      $OUT/report/report.html (mistakes link to their evidence pages)"
echo "  evidence report:  $OUT/evidence/index.html (open it in a browser: file://$PWD/$OUT/evidence/index.html)"
echo "  predictions:      $OUT/predictions.csv"
