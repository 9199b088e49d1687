"""Checkpoints: names, atomic saving, and strict, safe loading with the model card.

Files hold {'epoch', 'state_dict' ('module.'-prefixed keys, as a DDP model has them), 'bce_best', ...}; this
project's trainer adds 'card' (core.card), the optimizer, schedule and random states. The winner's 2020
releases hold only the first three and were pickled under NumPy 1.x, so their scalar is named
`numpy.core.multiarray.scalar`; torch >= 2.6 loads with weights_only=True and rejects any global not
allow-listed. We allow exactly the NumPy scalar constructor (under both its 1.x and 2.x names) and the dtypes
a scalar refers to; anything else needs --trusted-checkpoints.

`python -m core.checkpoints FILE...` checks that each file loads strictly and prints its card.
"""
from __future__ import annotations

import argparse
import pickle
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from core.atomic import atomic_write
from core.card import RELEASE_CARD, CardError, ModelCard
from core.cli import HelpFormatter
from core.models import DeepFakeClassifier

MODULE_PREFIX = "module."
_SCALAR = np._core.multiarray.scalar
NUMPY_SAFE_GLOBALS = [
    (_SCALAR, "numpy.core.multiarray.scalar"),  # NumPy 1.x pickles (the 2020 releases)
    (_SCALAR, "numpy._core.multiarray.scalar"),  # NumPy 2.x pickles
    np.dtype,
    np.dtypes.Float64DType,
    np.dtypes.Float32DType,
    np.dtypes.Int64DType,
]
DAMAGED_HINT = "the file may be truncated, damaged or not a torch checkpoint: fetch it again"
TRUSTED_HINT = "if you trust the file, rerun with --trusted-checkpoints (loads it with weights_only=False)"


class CheckpointError(RuntimeError):
    """A checkpoint that cannot be read or does not fit the model; the message names the file."""


# ---------------------------------------------------------------- names and saving

def snapshot_name(prefix: str, network: str, encoder: str, fold: int) -> str:
    """e.g. b7_111_DeepFakeClassifier_tf_efficientnet_b7_ns_0 (encoder as written in the config); the trainer
    adds _<epoch>, _last or _best."""
    return f"{prefix}{network}_{encoder}_{fold}"


def prefixed_state_dict(model: nn.Module) -> dict[str, torch.Tensor]:
    """The bare model's state dict with keys as a DDP-wrapped model has them ('module.encoder...')."""
    return {MODULE_PREFIX + key: value for key, value in model.state_dict().items()}


def strip_module_prefix(state_dict: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {key[len(MODULE_PREFIX):] if key.startswith(MODULE_PREFIX) else key: value
            for key, value in state_dict.items()}


def save_checkpoint(path: Path, checkpoint: dict) -> None:
    """torch.save streamed to a temporary file beside `path`, then renamed (B7 checkpoints are ~0.5 GB)."""
    atomic_write(path, lambda handle: torch.save(checkpoint, handle))


# ---------------------------------------------------------------- loading

def read_checkpoint(path: Path, trusted: bool = False) -> dict:
    """The checkpoint's dict, loaded with weights_only=True (plus NumPy scalars) unless `trusted`."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: checkpoint file not found")
    if path.stat().st_size == 0:
        raise CheckpointError(f"{path}: empty file (0 bytes); an interrupted download or copy? Fetch it again")
    try:
        if trusted:
            checkpoint = torch.load(path, map_location="cpu", weights_only=False)
        else:
            with torch.serialization.safe_globals(NUMPY_SAFE_GLOBALS):
                checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        if trusted:
            raise CheckpointError(f"{path}: cannot read checkpoint ({err}); {DAMAGED_HINT}") from err
        raise CheckpointError(f"{path}: refused by the safe loader ({err}); {TRUSTED_HINT}. If it is a downloaded "
                              f"release, {DAMAGED_HINT}") from err
    except Exception as err:  # damaged bytes make torch's loaders fail in many ways (struct.error, IndexError, ...)
        reason = str(err) or type(err).__name__
        raise CheckpointError(f"{path}: cannot read checkpoint ({type(err).__name__}: {reason}); {DAMAGED_HINT}") \
            from err
    if not isinstance(checkpoint, dict):
        raise CheckpointError(f"{path}: expected a dict, found {type(checkpoint).__name__}")
    return checkpoint


def state_dict_of(checkpoint: dict, path: Path) -> dict[str, torch.Tensor]:
    """The model weights ('module.' prefixes removed) of a dict with 'state_dict' or of a bare state dict."""
    state = checkpoint.get("state_dict", checkpoint)
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise CheckpointError(f"{path}: 'state_dict' is not a mapping of tensors")
    return strip_module_prefix(state)


def card_of(checkpoint: dict, path: Path) -> ModelCard:
    """The checkpoint's model card; a file without one (the 2020 releases) gets the original's card."""
    if "card" not in checkpoint:
        return RELEASE_CARD
    try:
        return ModelCard.from_dict(checkpoint["card"], source=str(path))
    except CardError as err:
        raise CheckpointError(str(err)) from err


def _list(keys, limit: int = 8) -> str:
    keys = sorted(keys)
    more = f" ... (+{len(keys) - limit} more)" if len(keys) > limit else ""
    return ", ".join(keys[:limit]) + more


def check_compatible(path: Path, model: nn.Module, state: dict[str, torch.Tensor], encoder: str) -> None:
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
        raise CheckpointError(f"{path}: does not match DeepFakeClassifier({encoder}): " + "; ".join(problems)
                              + " (wrong --encoder?)")


@dataclass
class LoadedClassifier:
    path: Path
    model: nn.Module  # in eval mode, on its device and dtype
    card: ModelCard  # the card scoring uses: the stored one with explicit overrides applied
    stored_card: ModelCard  # as in the file (or RELEASE_CARD)
    overrides: list[str]  # one line per explicit value that differs from the stored card


def load_classifier(path: Path, device: torch.device | str = "cpu", dtype: torch.dtype = torch.float32,
                    trusted: bool = False, overrides: dict | None = None) -> LoadedClassifier:
    """DeepFakeClassifier(card encoder, pretrained=False) with the file's weights loaded strictly, in eval mode.

    `overrides` holds card fields given explicitly by the user (None values are ignored).
    """
    path = Path(path)
    checkpoint = read_checkpoint(path, trusted)
    stored = card_of(checkpoint, path)
    try:
        card, messages = stored.with_overrides(overrides or {})
    except CardError as err:
        raise CheckpointError(f"{path}: {err}") from err
    try:
        model = DeepFakeClassifier(card.encoder, pretrained=False)
    except ValueError as err:  # an unknown encoder name
        raise CheckpointError(f"{path}: {err}") from err
    state = state_dict_of(checkpoint, path)
    check_compatible(path, model, state, card.encoder)
    model.load_state_dict(state, strict=True)
    model = model.eval().to(device=device, dtype=dtype)
    if torch.device(device).type == "cuda":
        model = model.to(memory_format=torch.channels_last)
    return LoadedClassifier(path, model, card, stored, messages)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description="Check that checkpoint files load strictly into DeepFakeClassifier "
                                                 "and print their model cards.",
                                     formatter_class=HelpFormatter)
    parser.add_argument("files", nargs="+", type=Path)
    parser.add_argument("--encoder", default=None, help="override the card's encoder")
    parser.add_argument("--trusted-checkpoints", action="store_true", help="load with weights_only=False")
    args = parser.parse_args(argv)
    failed = 0
    for path in args.files:
        try:
            loaded = load_classifier(path, trusted=args.trusted_checkpoints, overrides={"encoder": args.encoder})
            source = "stored" if loaded.stored_card is not RELEASE_CARD else "no card: the original's"
            print(f"OK      {path}\n        card ({source}): {loaded.card.to_dict()}")
        except CheckpointError as err:
            failed += 1
            print(f"FAILED  {err}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
