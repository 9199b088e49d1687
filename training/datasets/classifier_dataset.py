"""Face-crop dataset of the classifier: per-epoch balanced sampling, hardcore cut-outs, albumentations.

Files read under DATA_ROOT (the preprocessing contract): folds.csv, crops/<video>/<file>,
landmarks/<original>/<frame>_<actor>.npy and diffs/<video>/<frame>_<actor>_diff.png. Reals have no diff and
some crops have no landmarks: both are normal and silent.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple
from collections.abc import Sequence

import cv2
import numpy as np
import pandas as pd
import torch
from torch.utils.data import Dataset

from core.damage import named_errors
from core.layout import FOLDS_COLUMNS, diff_path, landmarks_path, read_landmarks
from training.datasets.cutouts import hardcore_cutout
from training.datasets.pair_mixup import mix, mixed_target
from core.model_input import IMAGENET_MEAN, IMAGENET_STD, image_to_tensor

log = logging.getLogger("training.dataset")

# validation keeps every 2nd crop frame: with crops every 10th, frame % 20 == 0 (the original)
VAL_EVERY_NTH_CROP_FRAME = 2
MAX_CONSECUTIVE_UNREADABLE = 50
CHANGED_PIXEL_VALUE = 20  # `valid`: a fake crop counts as changed with > 32 diff pixels above this
MIN_CHANGED_PIXELS = 32


class DataError(ValueError):
    """folds.csv or a checkpoint that cannot be used; the message names the file."""


class CropRow(NamedTuple):
    video: str
    file: str
    label: int
    original: str
    frame: int


def read_folds(path: Path) -> pd.DataFrame:
    """folds.csv with its columns checked; ids stay strings."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: folds file not found (run preprocess_data.sh first)")
    remedy = "delete it and rerun preprocessing/generate_folds.py (or preprocess_data.sh)"
    with named_errors(path, DataError, "a folds file (CSV)", remedy):
        folds = pd.read_csv(path, dtype={"video": str, "file": str, "original": str})
        missing = [c for c in FOLDS_COLUMNS if c not in folds.columns]
        if missing:
            raise DataError(f"{path}: missing columns {missing}; expected {list(FOLDS_COLUMNS)}; {remedy}")
        for column in ("label", "frame", "fold"):
            if folds[column].dtype.kind not in "iu":
                raise ValueError(f"column {column} holds values that are not whole numbers")
        if folds[["video", "file"]].isna().any().any():
            raise ValueError("a row without a video or file name")
    return folds


def crop_frame_step(folds: pd.DataFrame) -> int:
    """The step between the frames that have crops, read from folds.csv itself (the gcd of the frame numbers):
    10 for the original's preprocessing, whatever extract_crops was told otherwise."""
    frames = folds["frame"].to_numpy(dtype=np.int64)
    step = int(np.gcd.reduce(frames)) if len(frames) else 0
    return step or 1


def select_rows(folds: pd.DataFrame, fold: int, mode: str) -> pd.DataFrame:
    """Train: every fold but `fold`. Val: `fold`, every 2nd crop frame (frame % 20 == 0 with crops every 10th)."""
    if mode == "train":
        return folds[folds["fold"] != fold]
    if mode == "val":
        rows = folds[folds["fold"] == fold]
        return rows[rows["frame"] % (VAL_EVERY_NTH_CROP_FRAME * crop_frame_step(folds)) == 0]
    raise ValueError(f"mode must be 'train' or 'val', not {mode!r}")


def balanced_epoch_rows(rows: pd.DataFrame, epoch: int, seed: int, oversample_real: bool) -> list[CropRow]:
    """The original's per-epoch set: with seed' = (epoch + 1) * seed, fakes sampled without replacement down
    to the number of reals (when oversample_real), joined with all reals, then shuffled."""
    epoch_seed = (epoch + 1) * seed
    if oversample_real:
        reals = rows[rows["label"] == 0]
        fakes = rows[rows["label"] == 1]
        fakes = fakes.sample(n=min(len(reals), len(fakes)), replace=False, random_state=epoch_seed)
        rows = pd.concat([reals, fakes])
    order = np.random.default_rng(epoch_seed).permutation(len(rows))
    return [_to_row(r) for r in rows.iloc[order].itertuples(index=False)]


def _to_row(record) -> CropRow:
    return CropRow(str(record.video), str(record.file), int(record.label), str(record.original), int(record.frame))


@dataclass
class DatasetOptions:
    data_root: Path
    crops_dir: str = "crops"
    label_smoothing: float = 0.01  # train labels clipped to [s, 1 - s]
    hardcore: bool = True
    oversample_real: bool = True
    normalize_mean: Sequence[float] = IMAGENET_MEAN
    normalize_std: Sequence[float] = IMAGENET_STD
    pair_mixup: dict | None = None  # {"alpha": A, "p": P} (training/datasets/pair_mixup.py); train mode only


class DeepFakeClassifierDataset(Dataset):
    """Train mode resamples on `reset(epoch, seed)`; val mode holds a fixed, unsmoothed, unaugmented set."""

    def __init__(self, rows: pd.DataFrame, mode: str, options: DatasetOptions, transforms, seed: int = 0):
        if mode not in ("train", "val"):
            raise ValueError(f"mode must be 'train' or 'val', not {mode!r}")
        self.all_rows = rows
        self.mode = mode
        self.options = options
        self.root = Path(options.data_root)
        self.transforms = transforms
        self.rng = np.random.default_rng(seed)
        self.rows: list[CropRow] = [] if mode == "train" else [_to_row(r) for r in rows.itertuples(index=False)]

    def reset(self, epoch: int, seed: int) -> None:
        """Draw the epoch's balanced, shuffled rows (train); reseed the augmentations for workers=0."""
        if self.mode == "train":
            self.rows = balanced_epoch_rows(self.all_rows, epoch, seed, self.options.oversample_real)
        self.reseed((epoch + 1) * seed)

    def reseed(self, seed: int) -> None:
        """New random streams for the cut-outs and albumentations (called in each DataLoader worker)."""
        self.rng = np.random.default_rng(seed)
        if hasattr(self.transforms, "set_random_seed"):
            self.transforms.set_random_seed(seed % 2**32)

    def __len__(self) -> int:
        return len(self.rows)

    # ------------------------------------------------------------ files

    def crop_path(self, row: CropRow) -> Path:
        return self.root / self.options.crops_dir / row.video / row.file

    def landmarks_path(self, row: CropRow) -> Path:
        return landmarks_path(self.root, row.original, row.file)

    def diff_path(self, row: CropRow) -> Path:
        return diff_path(self.root, row.video, row.file)

    def _read_crop(self, row: CropRow) -> np.ndarray | None:
        path = self.crop_path(row)
        image = cv2.imread(str(path), cv2.IMREAD_COLOR) if path.is_file() else None
        return None if image is None else cv2.cvtColor(image, cv2.COLOR_BGR2RGB)

    def _read_diff(self, row: CropRow, shape: tuple[int, int]) -> np.ndarray:
        path = self.diff_path(row)
        if not path.is_file():  # reals, and fakes without a face in the original: normal
            return np.zeros(shape, dtype=np.uint8)
        diff = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
        if diff is None or diff.shape != shape:
            found = "unreadable" if diff is None else f"shape {diff.shape}, crop {shape}"
            log.warning("bad diff %s (%s): used as no change", path, found)
            return np.zeros(shape, dtype=np.uint8)
        return diff

    def _read_landmarks(self, row: CropRow) -> np.ndarray | None:
        path = self.landmarks_path(row)
        if not path.is_file():
            return None
        try:
            return read_landmarks(path)
        except ValueError as err:  # the message names the file
            log.warning("%s: no landmark cut-out for this crop", err)
            return None

    # ------------------------------------------------------------ samples

    def __getitem__(self, index: int) -> dict:
        """An unreadable crop is logged and replaced by the next row; `replaced` counts how many were skipped."""
        for skipped in range(MAX_CONSECUTIVE_UNREADABLE):
            row = self.rows[(index + skipped) % len(self.rows)]
            image = self._read_crop(row)
            if image is not None:
                return self._make_sample(row, image, replaced=skipped)
            log.warning("unreadable crop %s: replaced by the next sample", self.crop_path(row))
        raise RuntimeError(f"{MAX_CONSECUTIVE_UNREADABLE} unreadable crops in a row from index {index} "
                           f"under {self.root / self.options.crops_dir}")

    def _pair_mixed(self, row: CropRow, image: np.ndarray) -> tuple[np.ndarray, float | None]:
        """(the crop, None), or with probability p for a fake (the crop mixed with its original's, lambda)."""
        settings = self.options.pair_mixup
        if self.mode != "train" or not settings or row.label != 1 or self.rng.random() >= settings["p"]:
            return image, None
        real = self._read_crop(row._replace(video=row.original))
        if real is None or real.shape != image.shape:  # no face in the original's frame, or not aligned
            return image, None
        weight = float(self.rng.beta(settings["alpha"], settings["alpha"]))
        return mix(image, real, weight), weight

    def _make_sample(self, row: CropRow, image: np.ndarray, replaced: int) -> dict:
        label = float(row.label)
        image, weight = self._pair_mixed(row, image)
        if self.mode == "train":
            smoothing = self.options.label_smoothing
            label = float(np.clip(label, smoothing, 1 - smoothing))
            if weight is not None:
                label = mixed_target(weight, label, smoothing)
        diff = self._read_diff(row, image.shape[:2])
        if self.mode == "train" and self.options.hardcore:
            hardcore_cutout(image, diff, self._read_landmarks(row), label, self.rng)
        valid = bool(np.count_nonzero(diff > CHANGED_PIXEL_VALUE) > MIN_CHANGED_PIXELS or label < 0.5)
        augmented = self.transforms(image=image, mask=diff)
        sample = {
            "image": image_to_tensor(augmented["image"], self.options.normalize_mean, self.options.normalize_std),
            "labels": torch.tensor([label], dtype=torch.float32),
            "img_name": f"{row.video}/{row.file}",
            "video": row.video,
            "valid": valid,
            "replaced": replaced,
        }
        if self.options.pair_mixup:
            sample["mix_lambda"] = -1.0 if weight is None else weight  # -1: not mixed
        return sample


def reseed_worker(worker_id: int) -> None:
    """DataLoader worker_init_fn: each worker (and each epoch's workers) gets its own augmentation streams."""
    info = torch.utils.data.get_worker_info()
    info.dataset.reseed(info.seed)
