#!/usr/bin/env bash
# The winner's submission: the seven-checkpoint B7 ensemble over every video in TEST_DIR (their model card: the
# release files have none, so they get the original's: B7, 380 px, 32 frames).
# Usage: bash predict_submission.sh TEST_DIR OUTPUT_CSV [extra predict_folder.py options, e.g. --workers 8]
set -euo pipefail
USAGE="usage: bash predict_submission.sh TEST_DIR OUTPUT_CSV [predict_folder.py options]
Scores every video in TEST_DIR with the seven released B7 checkpoints in \$WEIGHTS_DIR (default: weights/, from
bash weights/download_weights.sh) and writes OUTPUT_CSV; see python predict_folder.py --help for the options."
if [ "${1:-}" = "-h" ] || [ "${1:-}" = "--help" ]; then
    echo "$USAGE"
    exit 0
fi
if [ "$#" -lt 2 ]; then
    echo "$USAGE" >&2
    exit 2
fi
TEST_DIR="$1"; OUTPUT="$2"; shift 2
REPO_DIR="$(cd "$(dirname "$0")" && pwd)"
WEIGHTS_DIR="${WEIGHTS_DIR:-$REPO_DIR/weights}"
# The seven checkpoints of the winning submission (the original's predict_submission.sh).
mapfile -t MODELS < "$REPO_DIR/weights/release_models.txt"
missing=()
for name in "${MODELS[@]}"; do
    [ -s "$WEIGHTS_DIR/$name" ] || missing+=("$name")
done
if [ "${#missing[@]}" -gt 0 ]; then
    echo "error: ${#missing[@]} of ${#MODELS[@]} checkpoints are missing from $WEIGHTS_DIR: ${missing[*]}" >&2
    echo "run: bash weights/download_weights.sh" >&2
    exit 1
fi
REPO_ROOT="$REPO_DIR"
source "$REPO_DIR/scripts/pinned_python.sh"
exec "$PYTHON" "$REPO_DIR/predict_folder.py" --weights-dir "$WEIGHTS_DIR" --models "${MODELS[@]}" \
    --test-dir "$TEST_DIR" --output "$OUTPUT" "$@"
