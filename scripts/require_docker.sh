# Sourced by build.sh and run.sh: stops with a clear message when docker or its engine is missing.
if ! command -v docker >/dev/null 2>&1; then
    echo "docker not found: install Docker Engine (https://docs.docker.com/engine/install/) and, for GPUs," \
         "the NVIDIA Container Toolkit; or use the local setup (./test.sh creates .venv)." >&2
    exit 127
fi
if ! engine_error="$(docker info 2>&1 >/dev/null)"; then
    echo "The Docker engine is not reachable: is the daemon running (sudo systemctl start docker) and may" \
         "your user use it (member of the 'docker' group)? docker said:" >&2
    echo "$engine_error" >&2
    exit 1
fi
