#!/usr/bin/env bash
# Builds the Docker image from the Dockerfile next to this script.
#   ./build.sh [TAG] [docker build options...]
# TAG defaults to dfdc-detector:latest (or $DFDC_IMAGE). Extra options go to `docker build`, e.g.
#   ./build.sh --build-arg BAKE_WEIGHTS=1      # bake the B7/B5 ImageNet weights into the image
#   ./build.sh mylab/dfdc:v1 --no-cache
# Proxy variables that are set (http_proxy, https_proxy, no_proxy, ftp_proxy and upper-case forms) are
# passed as build args; when a proxy listens on localhost the build uses the host network to reach it.
set -euo pipefail

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
