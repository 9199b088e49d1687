"""Aligned-pair mixup (NTech-Lab's trick at DFDC): a fake crop blended with its original's crop of the same frame
and face. Preprocessing cuts a fake's crops with its original's boxes, so the two crops cover the same pixels and
the blend is a partial fake, not a double exposure.

The blend is made on the raw crops, before the cut-outs and albumentations: the mixed crop then goes through the
augmentations once, which is the same as augmenting both crops with one draw and blending after (for the
geometric and colour steps; JPEG and noise act on the blend).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd


class PairMixupError(ValueError):
    """Pair mixup asked of a training set where no fake has its original's crop; the message names the file."""


def pairable_fakes(rows: pd.DataFrame) -> int:
    """How many fake rows have a real row of their original with the same crop file (frame and face)."""
    reals = set(zip(rows.loc[rows["label"] == 0, "video"], rows.loc[rows["label"] == 0, "file"]))
    fakes = rows[rows["label"] == 1]
    return sum((original, file) in reals for original, file in zip(fakes["original"], fakes["file"]))


def check_pairs(rows: pd.DataFrame, folds_csv: Path) -> None:
    """Refuse a training set without a single aligned pair (only reals, or fakes whose originals are absent)."""
    if pairable_fakes(rows) == 0:
        fakes, reals = int((rows["label"] == 1).sum()), int((rows["label"] == 0).sum())
        raise PairMixupError(f"{folds_csv}: 'pair_mixup' needs fakes whose original's crop of the same frame and "
                             f"face is among the training rows; none of the {fakes} fake rows has one ({reals} real "
                             f"rows): the originals are missing from this root. Drop 'pair_mixup'")


def mix(fake: np.ndarray, real: np.ndarray, weight: float) -> np.ndarray:
    """weight * fake + (1 - weight) * real, rounded to uint8."""
    blended = weight * fake.astype(np.float32) + (1 - weight) * real.astype(np.float32)
    return np.clip(np.rint(blended), 0, 255).astype(np.uint8)


def mixed_target(weight: float, fake_label: float, real_label: float) -> float:
    """The targets mixed like the pixels (with the train labels' smoothing: lambda itself when there is none)."""
    return weight * fake_label + (1 - weight) * real_label
