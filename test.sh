#!/usr/bin/env bash
# Runs the whole test suite on the CPU, setting up .venv first if needed. Extra arguments go to pytest,
# e.g. ./test.sh -m "not slow" or ./test.sh tests/test_folds.py
set -euo pipefail
cd "$(dirname "$0")"
source scripts/ensure_venv.sh
exec python -m pytest "$@"
