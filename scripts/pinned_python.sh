# Sourced by the shell entry points (needs REPO_ROOT): sets PYTHON to the interpreter that has the pinned
# packages and the checkout installed in editable mode, without installing anything. In order: $PYTHON when set; in
# the Docker image (DFDC_IN_IMAGE=1, set by the Dockerfile) the image's own python3, never a .venv of the
# mounted checkout (its interpreter link points to a path on the host); else the checkout's .venv; else python3.
if [[ -z "${PYTHON:-}" ]]; then
    PYTHON=python3
    if [[ "${DFDC_IN_IMAGE:-0}" != 1 && -x "$REPO_ROOT/.venv/bin/python" ]]; then
        PYTHON="$REPO_ROOT/.venv/bin/python"
    fi
fi
# Spinning OpenMP threads starve other processes on shared cores (a training step went from 1.4 s to 9.4 s).
export OMP_WAIT_POLICY="${OMP_WAIT_POLICY:-PASSIVE}"
