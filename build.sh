#!/usr/bin/env bash
# Builds the Docker image from the Dockerfile next to this script. See usage below.
set -euo pipefail

usage() {
    cat <<'EOF'
usage: ./build.sh [TAG] [docker build options...]

Builds the image from the Dockerfile next to this script (Python 3.11 with the pins of requirements.txt, the
code copied in; about 7 GB). Run it afterwards with ./run.sh DATA_DIR [COMMAND...].

  TAG      image name (default: $DFDC_IMAGE, else dfdc-detector:latest); run.sh reads DFDC_IMAGE too
  options  passed to `docker build`, e.g.
             ./build.sh --build-arg BAKE_WEIGHTS=1   bake the Noisy Student B7/B5 ImageNet weights into the
                                                     image, so training needs no model hub (default 0)
             ./build.sh mylab/dfdc:v1 --no-cache

Proxy variables that are set (http_proxy, https_proxy, no_proxy, ftp_proxy and their upper-case forms) are
passed as build args (names only: the values stay out of `docker history`); a proxy on localhost makes the
build use the host network. Without Docker Hub: docs/docker.md, "Without Docker Hub", makes the base image locally.
EOF
}
if [ "${1:-}" = "-h" ] || [ "${1:-}" = "--help" ]; then
    usage
    exit 0
fi

repo_dir="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
tag="${DFDC_IMAGE:-dfdc-detector:latest}"
if [ $# -gt 0 ] && [[ "$1" != -* ]]; then
    tag="$1"
    shift
fi

source "$repo_dir/scripts/require_docker.sh"

build_args=()
network_args=()
for name in http_proxy https_proxy no_proxy ftp_proxy HTTP_PROXY HTTPS_PROXY NO_PROXY FTP_PROXY; do
    value="${!name:-}"
    [ -n "$value" ] || continue
    # Without "=value" docker takes the value from this environment; proxy args stay out of `docker history`.
    build_args+=(--build-arg "$name")
    if [[ "$name" != [nN][oO]_* && "$value" =~ (localhost|127\.0\.0\.1|\[::1\]) ]]; then
        network_args=(--network=host)
    fi
done

echo "Building $repo_dir/Dockerfile into $tag" >&2
exec docker build ${build_args[@]+"${build_args[@]}"} ${network_args[@]+"${network_args[@]}"} -f "$repo_dir/Dockerfile" -t "$tag" "$@" "$repo_dir"
