#!/usr/bin/env bash
# Runs the five preprocessing steps on a DFDC-layout dataset, in order. See usage below.
set -euo pipefail

usage() {
    cat <<'EOF'
usage: preprocess_data.sh DATA_ROOT [options]

DATA_ROOT holds dfdc_train_part_N/ folders with *.mp4 and metadata.json. Writes DATA_ROOT/boxes, crops,
landmarks, landmarks68 (dlib's 68 points, real crops, for "fakes": "sbi"), diffs, DATA_ROOT/folds.csv and
DATA_ROOT/manifests/<step>.json (each step's settings and the videos it finished; the next step follows
them). Reruns skip finished videos; a rerun with settings other than those on disk is refused before any
work, naming both values.

options (passed to every step unless noted):
  --workers N                      worker processes (default: all cores)
  --num-shards N --shard-index I   process 1/N of the videos on this machine (defaults from RANK/WORLD_SIZE
                                   or a SLURM array); folds.csv is then NOT written: once every shard has
                                   finished, run  python -m preprocessing.generate_folds --root-dir DATA_ROOT
  --device auto|cpu|cuda           face detector device (detect step only; default auto)
  --frame-stride N                 detect faces on every N-th frame (detect step only; default 10; 1 = every
                                   frame, as the original); must divide --crop-every
  --crop-every N                   crop every N-th frame (default 10, as the original); set in the detect step,
                                   which records it for the crop step
  --batch-size N                   frames per detector call (detect step only; default 32)
  --seed S --n-splits K            row shuffle seed and number of folds (folds step only; default 777, 16)
EOF
}
fail_usage() { usage >&2; exit 2; }

[[ "${1:-}" == "-h" || "${1:-}" == "--help" ]] && { usage; exit 0; }
if [[ $# -lt 1 || ! -d "$1" ]]; then
    [[ $# -ge 1 ]] && echo "error: DATA_ROOT '$1' is not a directory" >&2
    fail_usage
fi
DATA_ROOT="$1"
shift

REPO_ROOT="$(cd "$(dirname "$0")" && pwd)"
source "$REPO_ROOT/scripts/pinned_python.sh"

common_args=() detect_args=() folds_args=()
num_shards="${WORLD_SIZE:-${SLURM_ARRAY_TASK_COUNT:-1}}"
while [[ $# -gt 0 ]]; do
    case "$1" in
        --device|--frame-stride|--crop-every|--batch-size) [[ $# -ge 2 ]] || fail_usage; detect_args+=("$1" "$2"); shift 2 ;;
        --seed|--n-splits) [[ $# -ge 2 ]] || fail_usage; folds_args+=("$1" "$2"); shift 2 ;;
        --num-shards) [[ $# -ge 2 ]] || fail_usage; num_shards="$2"; common_args+=("$1" "$2"); shift 2 ;;
        -h|--help) usage; exit 0 ;;
        *) common_args+=("$1"); shift ;;
    esac
done

step() {
    echo "=== $1" >&2
    "$PYTHON" -m "preprocessing.$1" --root-dir "$DATA_ROOT" "${@:2}"
}

step detect_original_faces "${common_args[@]}" "${detect_args[@]}"
step extract_crops "${common_args[@]}"
step generate_landmarks "${common_args[@]}"
step generate_landmarks68 "${common_args[@]}"
step generate_diffs "${common_args[@]}"
if [[ "$num_shards" -le 1 ]]; then
    step generate_folds "${common_args[@]}" "${folds_args[@]}"
else
    # folds.csv lists the crops of every video, so it can only be written once all shards are done.
    echo "=== generate_folds skipped on a sharded run: when all $num_shards shards have finished, run once" >&2
    echo "    $PYTHON -m preprocessing.generate_folds --root-dir $DATA_ROOT ${folds_args[*]:-}" >&2
fi
