#!/usr/bin/env bash
# One command that exercises the CUDA paths (training under torchrun, the seven-B7 ensemble in fp16,
# batched MTCNN, torch.compile); prints one table, exits non-zero if any section failed. Sized for under 8 minutes on one
# H200. --dry-run runs the same code on the CPU at tiny sizes. All options: bench/gpu_check.sh --help
set -euo pipefail
REPO_ROOT="$(cd "$(dirname "$0")/.." && pwd)"
export OMP_WAIT_POLICY="${OMP_WAIT_POLICY:-PASSIVE}"
PYTHON=python3
[[ -x "$REPO_ROOT/.venv/bin/python" ]] && PYTHON="$REPO_ROOT/.venv/bin/python"
cd "$REPO_ROOT"
exec "$PYTHON" -m bench.gpu_check "$@"  # as a module: bench.predict and bench.train_throughput are imported from it
