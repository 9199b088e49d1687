"""Crop datasets for `"fakes": "sbi"`: real crops only, each with its self-blended fake (training/datasets/sbi.py).

Train: an item is a real crop and its blend, augmented by the same albumentations draw, so the pair differs
only by the blend; `collate_pairs` lays a batch of N items out as 2N images, every real next to its blend.
Val: every real crop of the val fold, then its blend from a fixed seed per crop, as two separate samples; a
blend is scored as the video "<video>_sbi", so the per-video metrics compare real videos with blended ones.
Reads landmarks68/<video>/<frame>_<actor>.npy (preprocessing step generate_landmarks68).
"""
from __future__ import annotations

import logging

import numpy as np
import pandas as pd
import torch

from core.layout import landmarks68_path, read_landmarks
from core.model_input import image_to_tensor
from training.datasets.classifier_dataset import MAX_CONSECUTIVE_UNREADABLE, CropRow, DatasetOptions, \
    DeepFakeClassifierDataset, _to_row
from training.datasets.sbi import PAPER, SBIOptions, self_blend

log = logging.getLogger("training.dataset")

BLEND_TARGET = "blend"  # albumentations target name of the fake in a pair
BLEND_VIDEO_SUFFIX = "_sbi"


def real_rows(rows: pd.DataFrame) -> pd.DataFrame:
    return rows[rows["label"] == 0]


class SelfBlendedPairs(DeepFakeClassifierDataset):
    """Train mode only: the real rows, reshuffled each epoch; no cut-outs (SBI has none). `blend`: how the
    fakes are made (the config's "sbi" section)."""

    def __init__(self, rows: pd.DataFrame, options: DatasetOptions, transforms, seed: int = 0,
                 blend: SBIOptions = PAPER):
        super().__init__(real_rows(rows), "train", options, transforms, seed)
        self.blend = blend
        self.transforms.add_targets({BLEND_TARGET: "image"})

    def reset(self, epoch: int, seed: int) -> None:
        epoch_seed = (epoch + 1) * seed
        order = np.random.default_rng(epoch_seed).permutation(len(self.all_rows))
        self.rows = [_to_row(r) for r in self.all_rows.iloc[order].itertuples(index=False)]
        self.reseed(epoch_seed)

    def _read_landmarks68(self, row: CropRow) -> np.ndarray | None:
        path = landmarks68_path(self.root, row.video, row.file)
        try:
            return read_landmarks(path) if path.is_file() else None
        except ValueError as err:  # the message names the file
            log.warning("%s", err)
            return None

    def __getitem__(self, index: int) -> dict:
        """A crop that cannot be read or has no 68 landmarks is logged and replaced by the next row."""
        for skipped in range(MAX_CONSECUTIVE_UNREADABLE):
            row = self.rows[(index + skipped) % len(self.rows)]
            image = self._read_crop(row)
            landmarks = self._read_landmarks68(row) if image is not None else None
            if landmarks is not None:
                return self._make_pair(row, image, landmarks, replaced=skipped)
            what = "unreadable crop" if image is None else "no 68-point landmarks for"
            log.warning("%s %s: replaced by the next sample", what, self.crop_path(row))
        raise RuntimeError(f"{MAX_CONSECUTIVE_UNREADABLE} crops in a row from index {index} under {self.root} "
                           f"are unreadable or lack landmarks68 files (run preprocessing.generate_landmarks68)")

    def _make_pair(self, row: CropRow, image: np.ndarray, landmarks: np.ndarray, replaced: int) -> dict:
        fake, _mask = self_blend(image, landmarks, self.rng, self.blend)
        augmented = self.transforms(image=image, **{BLEND_TARGET: fake})
        smoothing = self.options.label_smoothing
        mean, std = self.options.normalize_mean, self.options.normalize_std
        return {
            "image": torch.stack([image_to_tensor(augmented["image"], mean, std),
                                  image_to_tensor(augmented[BLEND_TARGET], mean, std)]),
            "labels": torch.tensor([[smoothing], [1 - smoothing]], dtype=torch.float32),
            "img_name": [f"{row.video}/{row.file}", f"{row.video}{BLEND_VIDEO_SUFFIX}/{row.file}"],
            "video": [row.video, f"{row.video}{BLEND_VIDEO_SUFFIX}"],
            "valid": torch.tensor([True, True]),
            "replaced": torch.tensor([replaced, 0]),
        }


def collate_pairs(items: list[dict]) -> dict:
    """N pair items -> one batch of 2N samples (real, blend, real, blend, ...)."""
    batch = {}
    for key in ("image", "labels", "valid", "replaced"):
        batch[key] = torch.cat([item[key] for item in items])
    for key in ("img_name", "video"):
        batch[key] = [name for item in items for name in item[key]]
    return batch


class SelfBlendedValidation(SelfBlendedPairs):
    """Val mode: 2N single samples (real i at 2i, its blend at 2i + 1); the blend of crop i always uses seed
    (seed, i), so every validation sees the same fakes."""

    def __init__(self, rows: pd.DataFrame, options: DatasetOptions, transforms, seed: int = 0,
                 blend: SBIOptions = PAPER):
        super().__init__(rows, options, transforms, seed, blend)
        self.mode = "val"
        self.seed = seed
        self.rows = [_to_row(r) for r in self.all_rows.itertuples(index=False)]

    def reset(self, epoch: int, seed: int) -> None:
        """Fixed set: nothing to redraw."""

    def __len__(self) -> int:
        return 2 * len(self.rows)

    def __getitem__(self, index: int) -> dict:
        row_index, is_blend = divmod(index, 2)
        self.rng = np.random.default_rng([self.seed, row_index])
        pair = super().__getitem__(row_index)
        return {key: value[is_blend] for key, value in pair.items()}

    def _make_pair(self, row: CropRow, image: np.ndarray, landmarks: np.ndarray, replaced: int) -> dict:
        pair = super()._make_pair(row, image, landmarks, replaced)
        pair["labels"] = torch.tensor([[0.0], [1.0]])
        return pair
