"""Checkpoint names and files: atomic writes, 'module.'-prefixed model keys (as the original's releases)."""
from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from preprocessing.common import atomic_write

MODULE_PREFIX = "module."


def snapshot_name(prefix: str, network: str, encoder: str, fold: int) -> str:
    """e.g. b7_111_DeepFakeClassifier_tf_efficientnet_b7_ns_0 (encoder as written in the config)."""
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


def load_checkpoint(path: Path) -> dict:
    """A checkpoint of this trainer (or a released one) with weights_only=True: tensors and plain values only."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {path} not found")
    return torch.load(path, map_location="cpu", weights_only=True)
