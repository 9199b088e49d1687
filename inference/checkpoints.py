"""Loading classifier checkpoints (the winner's 2020 releases and this project's trainer) strictly and safely.

Released files hold {'epoch', 'state_dict' (DDP keys, 'module.' prefix), 'bce_best' (a NumPy float64)}. They
were pickled under NumPy 1.x, so the scalar is named `numpy.core.multiarray.scalar`; torch >= 2.6 loads with
weights_only=True and rejects any global not allow-listed. We allow exactly the NumPy scalar constructor
(under both its 1.x and 2.x names) and the dtypes a scalar refers to; anything else needs --trusted-checkpoints.

`python -m inference.checkpoints [--encoder E] FILE...` checks that each file loads strictly.
"""
from __future__ import annotations

import argparse
import pickle
import sys
from pathlib import Path

import numpy as np
import torch

from training.tools.checkpoint import strip_module_prefix
from training.zoo.classifiers import DeepFakeClassifier

DEFAULT_ENCODER = "tf_efficientnet_b7_ns"
_SCALAR = np._core.multiarray.scalar
NUMPY_SAFE_GLOBALS = [
    (_SCALAR, "numpy.core.multiarray.scalar"),  # NumPy 1.x pickles (the 2020 releases)
    (_SCALAR, "numpy._core.multiarray.scalar"),  # NumPy 2.x pickles (our trainer, if it stores a NumPy float)
    np.dtype,
    np.dtypes.Float64DType,
    np.dtypes.Float32DType,
    np.dtypes.Int64DType,
]
TRUSTED_HINT = "if you trust the file, rerun with --trusted-checkpoints (loads it with weights_only=False)"


class CheckpointError(RuntimeError):
    """A checkpoint that cannot be read or does not fit the model; the message names the file."""


def read_state_dict(path: Path, trusted: bool = False) -> dict[str, torch.Tensor]:
    """The model weights of a checkpoint file, 'module.' prefixes removed.

    Accepts a dict with 'state_dict' (release and trainer format) or a bare state dict.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: checkpoint file not found")
    try:
        if trusted:
            checkpoint = torch.load(path, map_location="cpu", weights_only=False)
        else:
            with torch.serialization.safe_globals(NUMPY_SAFE_GLOBALS):
                checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        raise CheckpointError(f"{path}: refused by the safe loader ({err}); {TRUSTED_HINT}") from err
    except (RuntimeError, EOFError, OSError) as err:
        raise CheckpointError(f"{path}: cannot read checkpoint ({err}); the file may be truncated, "
                              f"download it again") from err
    if not isinstance(checkpoint, dict):
        raise CheckpointError(f"{path}: expected a dict, found {type(checkpoint).__name__}")
    state = checkpoint.get("state_dict", checkpoint)
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise CheckpointError(f"{path}: 'state_dict' is not a mapping of tensors")
    return strip_module_prefix(state)


def _list(keys, limit: int = 8) -> str:
    keys = sorted(keys)
    more = f" ... (+{len(keys) - limit} more)" if len(keys) > limit else ""
    return ", ".join(keys[:limit]) + more


def check_compatible(path: Path, model: torch.nn.Module, state: dict[str, torch.Tensor]) -> None:
    """Raise CheckpointError listing missing, unexpected and shape-mismatched keys (strict=True, explained)."""
    expected = model.state_dict()
    missing = expected.keys() - state.keys()
    unexpected = state.keys() - expected.keys()
    mismatched = [f"{k} {tuple(state[k].shape)} vs model {tuple(expected[k].shape)}"
                  for k in expected.keys() & state.keys() if state[k].shape != expected[k].shape]
    if missing or unexpected or mismatched:
        problems = []
        if missing:
            problems.append(f"{len(missing)} missing: {_list(missing)}")
        if unexpected:
            problems.append(f"{len(unexpected)} unexpected: {_list(unexpected)}")
        if mismatched:
            problems.append(f"{len(mismatched)} shape-mismatched: {_list(mismatched)}")
        raise CheckpointError(f"{path}: does not match DeepFakeClassifier({getattr(model, 'encoder_name', '?')}): "
                              + "; ".join(problems) + " (wrong --encoder?)")


def load_classifier(path: Path, encoder: str = DEFAULT_ENCODER, device: torch.device | str = "cpu",
                    dtype: torch.dtype = torch.float32, trusted: bool = False) -> torch.nn.Module:
    """DeepFakeClassifier(encoder, pretrained=False) with the file's weights loaded strictly, in eval mode."""
    model = DeepFakeClassifier(encoder, pretrained=False)
    model.encoder_name = encoder
    state = read_state_dict(path, trusted)
    check_compatible(path, model, state)
    model.load_state_dict(state, strict=True)
    model = model.eval().to(device=device, dtype=dtype)
    if torch.device(device).type == "cuda":
        model = model.to(memory_format=torch.channels_last)
    return model


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description="Check that checkpoint files load strictly into DeepFakeClassifier.")
    parser.add_argument("files", nargs="+", type=Path)
    parser.add_argument("--encoder", default=DEFAULT_ENCODER)
    parser.add_argument("--trusted-checkpoints", action="store_true", help="load with weights_only=False")
    args = parser.parse_args(argv)
    failed = 0
    for path in args.files:
        try:
            load_classifier(path, args.encoder, trusted=args.trusted_checkpoints)
            print(f"OK      {path}")
        except CheckpointError as err:
            failed += 1
            print(f"FAILED  {err}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
