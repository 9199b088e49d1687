#!/usr/bin/env bash
# Runs COMMAND (default: an interactive bash) in the image built by ./build.sh.
set -euo pipefail

usage() {
    cat >&2 <<'EOF'
usage: ./run.sh DATA_DIR [COMMAND...]
  DATA_DIR  folder with the dfdc_train_part_N folders; mounted read-write at /dataset
            (preprocessing writes boxes/, crops/, ... and folds.csv there)
  COMMAND   what to run in /workspace (this checkout, mounted); default: an interactive bash
examples:
  ./run.sh /data/dfdc ./preprocess_data.sh /dataset
  ./run.sh /data/dfdc ./train.sh /dataset 4
  ./run.sh /tmp/empty ./demo.sh                 # the demo in the image
  ./run.sh /tmp/empty ./test.sh -m "not slow"   # the tests in the image
  demo.sh and test.sh do not read /dataset: DATA_DIR is then unused and can be any existing folder, e.g. an
  empty one (mkdir -p /tmp/empty).
  Commands run in /workspace, which is this checkout: the demo writes demo_data/ and demo_output/ into it,
  owned by you.
environment:
  DFDC_IMAGE       image to run (default dfdc-detector:latest)
  NO_GPU=1         run without --gpus all
  DFDC_HF_CACHE    host folder for the model cache (default $HF_HOME or ~/.cache/huggingface;
                   not mounted when the image was built with BAKE_WEIGHTS=1, unless set)
  DOCKER_RUN_ARGS  extra `docker run` options, e.g. "-p 6006:6006"
  Proxy variables, HF_HUB_OFFLINE, HF_ENDPOINT, HF_TOKEN and CUDA_VISIBLE_DEVICES are passed through when set.
EOF
}

if [ "${1:-}" = "-h" ] || [ "${1:-}" = "--help" ]; then
    usage 2>&1
    exit 0
fi
if [ $# -lt 1 ]; then
    usage
    exit 2
fi
if [ ! -d "$1" ]; then
    echo "DATA_DIR is not a directory: '$1'" >&2
    usage
    exit 2
fi
data_dir="$(cd "$1" && pwd)"
shift
repo_dir="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
image="${DFDC_IMAGE:-dfdc-detector:latest}"

source "$repo_dir/scripts/require_docker.sh"
runtimes="$(docker info --format '{{json .Runtimes}}' 2>/dev/null || true)"
if ! baked="$(docker image inspect --format '{{ index .Config.Labels "dfdc.baked-weights" }}' "$image" 2>/dev/null)"; then
    echo "Docker image '$image' not found: build it first with ./build.sh" >&2
    exit 1
fi

gpu_args=()
if [ "${NO_GPU:-0}" = "1" ]; then
    echo "NO_GPU=1: running without GPUs." >&2
elif [[ "$runtimes" == *nvidia* ]] || command -v nvidia-ctk >/dev/null 2>&1; then
    gpu_args=(--gpus all)
else
    echo "warning: Docker has no NVIDIA runtime (install the NVIDIA Container Toolkit); running without" \
         "GPUs. Set NO_GPU=1 to silence this." >&2
fi

# Files written to the checkout or the data folder belong to the calling user, not root.
# That user has no home in the image, hence HOME=/tmp.
mounts=(-v "$data_dir:/dataset" -v "$repo_dir:/workspace")
if [ -n "${DFDC_HF_CACHE:-}" ] || [ "$baked" != "1" ]; then
    hf_cache="${DFDC_HF_CACHE:-${HF_HOME:-$HOME/.cache/huggingface}}"
    mkdir -p "$hf_cache"  # created by us, not by docker as root
    mounts+=(-v "$(cd "$hf_cache" && pwd):/opt/cache/huggingface")
fi

env_args=(-e HOME=/tmp)
for name in http_proxy https_proxy no_proxy ftp_proxy HTTP_PROXY HTTPS_PROXY NO_PROXY FTP_PROXY \
            HF_HUB_OFFLINE HF_ENDPOINT HF_TOKEN CUDA_VISIBLE_DEVICES; do
    if [ -n "${!name:-}" ]; then
        env_args+=(-e "$name")  # the value comes from this environment and stays off the command line
    fi
done

tty_args=(-i)
if [ -t 0 ] && [ -t 1 ]; then
    tty_args=(-it)
fi
read -r -a extra_args <<< "${DOCKER_RUN_ARGS:-}"
[ $# -gt 0 ] || set -- bash

# --ipc=host: DataLoader workers share batches through /dev/shm, which is only 64 MB by default.
# --init reaps worker processes and forwards Ctrl-C.
exec docker run --rm --init "${tty_args[@]}" ${gpu_args[@]+"${gpu_args[@]}"} --ipc=host \
    --user "$(id -u):$(id -g)" "${env_args[@]}" "${mounts[@]}" -w /workspace \
    ${extra_args[@]+"${extra_args[@]}"} "$image" "$@"
