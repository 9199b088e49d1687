#!/usr/bin/env bash
# The original's five B7 trainings (seeds 111 555 777 888 999), one torchrun job per seed. See usage below.
set -euo pipefail

usage() {
    cat <<'USAGE'
usage: train.sh DATA_ROOT NUM_GPUS [extra train_classifier.py arguments]

DATA_ROOT  preprocessed dataset (crops/, landmarks/, diffs/, folds.csv from preprocess_data.sh)
NUM_GPUS   training processes per node (one per GPU), a positive integer

Per seed S: checkpoints weights/<name>_S_DeepFakeClassifier_<encoder>_0_{EPOCH,last,best}, the full log
(stdout and stderr) in logs/<name>_S (validation fake_loss/real_loss lines for plot_loss.py), TensorBoard +
metrics.csv in logs/<name>_S_DeepFakeClassifier_<encoder>_0/, where <name> is the config file's name (b7).
A seed with a _last checkpoint resumes from it. A seed that fails is listed at the end (rerun to resume it);
an error no rerun can fix (bad config key, missing folds.csv, no pretrained weights offline) stops at once.

environment:
  CONFIG=configs/b7.json   training config
  SEEDS="111 555 777 888 999"
  NNODES=1                 nodes; above 1, start train.sh on every node with the same RDZV_ENDPOINT
  RDZV_ENDPOINT=host:port  c10d rendezvous on the first node (required when NNODES > 1)
  LOG_DIR=logs             folder of the per-seed logs
  DRY_RUN=1                print the commands instead of running them
USAGE
}
fail_usage() { usage >&2; exit 2; }

[[ "${1:-}" == "-h" || "${1:-}" == "--help" ]] && { usage; exit 0; }
[[ $# -ge 2 ]] || fail_usage
DATA_ROOT="$1"
NUM_GPUS="$2"
shift 2
if [[ -z "$DATA_ROOT" || ! -d "$DATA_ROOT" ]]; then
    echo "error: DATA_ROOT '$DATA_ROOT' is not a directory" >&2
    fail_usage
fi
if [[ ! "$NUM_GPUS" =~ ^[1-9][0-9]*$ ]]; then
    echo "error: NUM_GPUS '$NUM_GPUS' is not a positive integer" >&2
    fail_usage
fi
NNODES="${NNODES:-1}"
if [[ ! "$NNODES" =~ ^[1-9][0-9]*$ ]]; then
    echo "error: NNODES '$NNODES' is not a positive integer" >&2
    fail_usage
fi
if [[ "$NNODES" -gt 1 && -z "${RDZV_ENDPOINT:-}" ]]; then
    echo "error: NNODES=$NNODES needs RDZV_ENDPOINT=host:port (the first node)" >&2
    fail_usage
fi
DATA_ROOT="$(cd "$DATA_ROOT" && pwd)"

REPO_ROOT="$(cd "$(dirname "$0")" && pwd)"
cd "$REPO_ROOT"
source "$REPO_ROOT/scripts/pinned_python.sh"
CONFIG="${CONFIG:-configs/b7.json}"
[[ -f "$CONFIG" ]] || { echo "error: CONFIG '$CONFIG' not found" >&2; fail_usage; }
NAME="$(basename "$CONFIG" .json)"
SEEDS="${SEEDS:-111 555 777 888 999}"
LOG_DIR="${LOG_DIR:-logs}"

[[ "${DRY_RUN:-0}" == "1" ]] || mkdir -p "$LOG_DIR" weights
failed=()
read -r -a seeds <<< "$SEEDS"
for i in "${!seeds[@]}"; do
    seed="${seeds[$i]}"
    if [[ "$NNODES" -gt 1 ]]; then
        launch=(--nnodes "$NNODES" --rdzv-backend c10d --rdzv-endpoint "$RDZV_ENDPOINT" --rdzv-id "${NAME}_${seed}")
    else
        launch=(--standalone)
    fi
    # --resume last: a seed interrupted earlier continues from its own _last checkpoint (a finished one ends at once).
    command=("$PYTHON" -u -m torch.distributed.run "${launch[@]}" --nproc_per_node "$NUM_GPUS"
             training/pipelines/train_classifier.py --config "$CONFIG" --freeze-epochs 0 --test-every 1
             --label-smoothing 0.01 --folds-csv folds.csv --fold 0 --seed "$seed" --data-dir "$DATA_ROOT"
             --prefix "${NAME}_${seed}_" --resume last "$@")
    log="$LOG_DIR/${NAME}_${seed}"
    if [[ "${DRY_RUN:-0}" == "1" ]]; then
        echo "${command[*]} >> $log 2>&1"
        continue
    fi
    echo "=== seed $seed: log in $log" >&2
    start_line=1  # this run's part of a log that earlier runs appended to
    [[ -f "$log" ]] && start_line=$(( $(wc -l < "$log") + 1 ))
    if "${command[@]}" >> "$log" 2>&1; then
        continue
    fi
    # The trainer reports errors that no rerun can fix on one line starting with this prefix.
    fatal="$(tail -n "+$start_line" "$log" | grep -m1 '^train_classifier: error:' || true)"
    if [[ -n "$fatal" ]]; then
        echo "$fatal" >&2
        not_started="${seeds[*]:i+1}"
        echo "train.sh: stopped at seed $seed on this error, which rerunning alone does not fix;" \
             "seeds not started: ${not_started:-none}. Full log: $log" >&2
        exit 2
    fi
    echo "seed $seed failed; the end of $log:" >&2
    tail -n 5 "$log" >&2
    failed+=("$seed")
done
if [[ ${#failed[@]} -gt 0 ]]; then
    echo "error: seeds ${failed[*]} failed; see $LOG_DIR/${NAME}_<seed>. Rerun train.sh to resume them." >&2
    exit 1
fi
