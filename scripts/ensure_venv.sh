# Sourced by test.sh and demo.sh from the checkout's root: puts an interpreter with the pinned packages first
# on PATH. In the Docker image (DFDC_IN_IMAGE=1) that is the image's own Python: nothing is built in the
# mounted checkout, and a host .venv there is left alone. Elsewhere .venv is created when missing or when
# requirements.txt, requirements-nodeps.txt, requirements-dev.txt or pyproject.toml changed (pip, not uv/poetry:
# torch comes from the local wheel cache where one exists): the runtime pins, grad-cam without its dependencies (it asks for opencv-python,
# which would replace opencv-python-headless's cv2), the development pins (pytest, ruff) and the checkout itself in
# editable mode, so that `import core` works from any folder without PYTHONPATH.
REPO_ROOT="$PWD"
if [ "${DFDC_IN_IMAGE:-0}" != 1 ]; then
    VENV_DIR="${VENV_DIR:-.venv}"
    PYTHON_BIN="${PYTHON_BIN:-python3.11}"
    command -v "$PYTHON_BIN" >/dev/null 2>&1 || PYTHON_BIN=python3
    stamp="$VENV_DIR/.requirements.sha256"
    want="$(cat requirements.txt requirements-nodeps.txt requirements-dev.txt pyproject.toml | sha256sum | cut -d' ' -f1)"
    if [ ! -x "$VENV_DIR/bin/python" ] || [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
        echo "Setting up $VENV_DIR from requirements.txt and requirements-dev.txt (first run: a few minutes, ~6 GB)..." >&2
        [ -x "$VENV_DIR/bin/python" ] || "$PYTHON_BIN" -m venv "$VENV_DIR"
        "$VENV_DIR/bin/python" -m pip install -q --upgrade pip >&2
        "$VENV_DIR/bin/python" -m pip install -q -r requirements.txt -r requirements-dev.txt >&2
        "$VENV_DIR/bin/python" -m pip install -q --no-deps -r requirements-nodeps.txt >&2
        "$VENV_DIR/bin/python" -m pip install -q --no-deps -e . >&2
        echo "$want" > "$stamp"
    fi
    export PATH="$PWD/$VENV_DIR/bin:$PATH"
    PYTHON="$PWD/$VENV_DIR/bin/python"
fi
source "$REPO_ROOT/scripts/pinned_python.sh"
