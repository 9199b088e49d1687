# Sourced by test.sh and demo.sh: creates .venv from requirements.txt when missing or when the pins changed.
# pip (not uv/poetry): torch 2.14.1 comes from the local wheel cache where one exists.
VENV_DIR="${VENV_DIR:-.venv}"
PYTHON_BIN="${PYTHON_BIN:-python3.11}"
command -v "$PYTHON_BIN" >/dev/null 2>&1 || PYTHON_BIN=python3
stamp="$VENV_DIR/.requirements.sha256"
want="$(sha256sum requirements.txt | cut -d' ' -f1)"
if [ ! -x "$VENV_DIR/bin/python" ] || [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
    echo "Setting up $VENV_DIR from requirements.txt (first run: a few minutes, ~6 GB)..." >&2
    [ -x "$VENV_DIR/bin/python" ] || "$PYTHON_BIN" -m venv "$VENV_DIR"
    "$VENV_DIR/bin/python" -m pip install -q --upgrade pip >&2
    "$VENV_DIR/bin/python" -m pip install -q -r requirements.txt >&2
    echo "$want" > "$stamp"
fi
export PATH="$PWD/$VENV_DIR/bin:$PATH"
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
# Spinning OpenMP threads starve other processes on shared cores (a training step went from 1.4 s to 9.4 s).
export OMP_WAIT_POLICY="${OMP_WAIT_POLICY:-PASSIVE}"
