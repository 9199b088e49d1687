"""Training loss: weighted criteria applied separately to the fake and the real part of a batch, then averaged."""
from __future__ import annotations

from typing import NamedTuple

import torch
from torch import nn

CRITERIA = {"BinaryCrossentropy": nn.BCEWithLogitsLoss}


class WeightedLosses(nn.Module):
    """sum(weight * criterion(logits, targets)) over the config's `losses` mapping, e.g. {"BinaryCrossentropy": 1}."""

    def __init__(self, weights: dict[str, float]):
        super().__init__()
        unknown = [name for name in weights if name not in CRITERIA]
        if unknown:
            raise ValueError(f"unknown loss {unknown}; known: {', '.join(CRITERIA)}")
        self.weights = dict(weights)
        self.criteria = nn.ModuleDict({name: CRITERIA[name]() for name in weights})

    def forward(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        return sum(weight * self.criteria[name](logits, targets) for name, weight in self.weights.items())


class BalancedLoss(NamedTuple):
    loss: torch.Tensor
    fake_loss: torch.Tensor | None  # None when the batch has no fake
    real_loss: torch.Tensor | None  # None when the batch has no real


def balanced_loss(criterion: nn.Module, logits: torch.Tensor, targets: torch.Tensor,
                  keep: torch.Tensor | None = None) -> BalancedLoss:
    """Mean of the fake-part loss (targets > 0.5) and the real-part loss.

    A batch with one class only uses that part alone (the original added a zero for the missing part, halving
    the loss). `keep` (bool per sample) drops samples, e.g. unchanged fakes with --only-changed-frames; a batch
    with nothing left gives a zero loss that still reaches every parameter (DDP needs the backward).
    """
    logits, targets = logits.reshape(-1).float(), targets.reshape(-1).float()
    if keep is not None:
        keep = keep.reshape(-1).to(torch.bool)
        logits_kept, targets_kept = logits[keep], targets[keep]
    else:
        logits_kept, targets_kept = logits, targets
    is_fake = targets_kept > 0.5
    fake_loss = criterion(logits_kept[is_fake], targets_kept[is_fake]) if is_fake.any() else None
    real_loss = criterion(logits_kept[~is_fake], targets_kept[~is_fake]) if (~is_fake).any() else None
    parts = [part for part in (fake_loss, real_loss) if part is not None]
    loss = sum(parts) / len(parts) if parts else logits.sum() * 0.0
    return BalancedLoss(loss, fake_loss, real_loss)
