#!/usr/bin/env bash
# Downloads the winner's seven released B7 checkpoints (GitHub release 0.0.1) into weights/, then checks that
# each loads strictly into DeepFakeClassifier(tf_efficientnet_b7_ns).
# Usage: bash weights/download_weights.sh            (from anywhere; about 7 x 255 MB)
# Interrupted downloads resume (<name>.part); files already complete are skipped.
set -euo pipefail
TAG=0.0.1
BASE_URL="https://github.com/selimsef/dfdc_deepfake_challenge/releases/download/${TAG}"
WEIGHTS_DIR="$(cd "$(dirname "$0")" && pwd)"
REPO_DIR="$(dirname "$WEIGHTS_DIR")"
# The seven checkpoints of the winning submission (the original's predict_submission.sh).
mapfile -t NAMES < "$WEIGHTS_DIR/release_models.txt"
USAGE="usage: bash weights/download_weights.sh   (takes no arguments; writes into $WEIGHTS_DIR)
Downloads the seven released B7 checkpoints (about 7 x 255 MB; interrupted downloads resume), then checks that
each loads strictly."
if [ "${1:-}" = "-h" ] || [ "${1:-}" = "--help" ]; then
    echo "$USAGE"
    exit 0
fi
if [ "$#" -gt 0 ]; then
    echo "$USAGE" >&2
    exit 2
fi
command -v curl >/dev/null || { echo "error: curl is not installed" >&2; exit 1; }

for name in "${NAMES[@]}"; do
    target="$WEIGHTS_DIR/$name"
    if [ -s "$target" ]; then
        echo "present: $name"
        continue
    fi
    echo "downloading: $name"
    # A file only gets its final name once curl finished it, so a present file is a complete one.
    if ! curl -L --fail --retry 3 -C - -o "$target.part" "$BASE_URL/$name"; then
        echo "error: download of $BASE_URL/$name failed (rerun to resume; or fetch it by hand from" \
             "https://github.com/selimsef/dfdc_deepfake_challenge/releases/tag/$TAG into $WEIGHTS_DIR)" >&2
        exit 1
    fi
    mv "$target.part" "$target"
done

echo "checking that every checkpoint loads strictly..."
REPO_ROOT="$REPO_DIR"
source "$REPO_DIR/scripts/pinned_python.sh"
cd "$REPO_DIR"
"$PYTHON" -m core.checkpoints \
    --encoder tf_efficientnet_b7_ns "${NAMES[@]/#/$WEIGHTS_DIR/}" || {
    echo "error: a checkpoint did not load (see above); delete it and rerun to download it again" >&2
    exit 1
}
echo "all ${#NAMES[@]} checkpoints are in $WEIGHTS_DIR"
