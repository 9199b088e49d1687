"""Training data: per-epoch sampling, labels, unreadable crops, cut-outs, albumentations parameters, the loss."""
from __future__ import annotations

import logging
import math
import warnings

import albumentations as A
import cv2
import numpy as np
import pandas as pd
import pytest
import skimage.data
import torch

from training.datasets.classifier_dataset import (DatasetOptions, DeepFakeClassifierDataset, balanced_epoch_rows,
                                                  select_rows)
from training.datasets.cutouts import (bit_masks, blackout_bit_mask, blackout_hull_half, face_outline_68,
                                       hardcore_cutout, remove_landmark)
from training.losses import WeightedLosses, balanced_loss
from training.transforms.albu import IsotropicResize, create_train_transforms, create_val_transforms
from core.model_input import isotropic_resize, put_to_center


class ScriptedRandom:
    """Stands in for np.random.Generator with a fixed sequence of random() values, to pick cut-out branches."""

    def __init__(self, *values: float):
        self.values = list(values)

    def random(self) -> float:
        return self.values.pop(0)


def folds_frame(reals: int, fakes_per_real: int, frames=(0, 10, 20, 30, 40)) -> pd.DataFrame:
    rows = []
    for r in range(reals):
        original = f"real{r:02d}"
        fold = r % 3
        for frame in frames:
            rows.append((original, f"{frame}_0.png", 0, original, frame, fold))
            for f in range(fakes_per_real):
                rows.append((f"fake{r:02d}_{f}", f"{frame}_0.png", 1, original, frame, fold))
    return pd.DataFrame(rows, columns=["video", "file", "label", "original", "frame", "fold"])


# ---------------------------------------------------------------- sampling

def test_epoch_sampling_is_balanced_seeded_and_changes_between_epochs():
    train = select_rows(folds_frame(reals=9, fakes_per_real=3), fold=0, mode="train")
    epoch0 = balanced_epoch_rows(train, epoch=0, seed=777, oversample_real=True)
    epoch1 = balanced_epoch_rows(train, epoch=1, seed=777, oversample_real=True)
    reals = (train["label"] == 0).sum()
    for rows in (epoch0, epoch1):
        labels = [row.label for row in rows]
        assert labels.count(0) == labels.count(1) == reals
        assert len({(row.video, row.file) for row in rows}) == len(rows)  # fakes without replacement
        assert {row.label for row in rows[: len(rows) // 2]} == {0, 1}  # shuffled, not reals then fakes
    fakes0 = {(r.video, r.file) for r in epoch0 if r.label == 1}
    fakes1 = {(r.video, r.file) for r in epoch1 if r.label == 1}
    assert fakes0 != fakes1
    assert balanced_epoch_rows(train, epoch=0, seed=777, oversample_real=True) == epoch0
    assert all(row.original.startswith("real") for row in epoch0)
    unbalanced = balanced_epoch_rows(train, epoch=0, seed=777, oversample_real=False)
    assert len(unbalanced) == len(train)


def test_validation_rows_are_the_fold_every_20th_frame():
    folds = folds_frame(reals=6, fakes_per_real=2)
    val = select_rows(folds, fold=1, mode="val")
    assert set(val["fold"]) == {1} and set(val["frame"]) == {0, 20, 40}
    assert len(select_rows(folds, fold=1, mode="train")) == (folds["fold"] != 1).sum()


# ---------------------------------------------------------------- dataset samples

def write_root(root, folds: pd.DataFrame, size=(90, 70)) -> None:
    """Crops for every row (random BGR PNGs), a diff for each fake, landmarks for each original."""
    rng = np.random.default_rng(0)
    for row in folds.itertuples():
        crop = root / "crops" / row.video / row.file
        crop.parent.mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(crop), rng.integers(0, 255, size + (3,), dtype=np.uint8))
        stem = row.file[:-4]
        if row.label == 1:
            diff = root / "diffs" / row.video / f"{stem}_diff.png"
            diff.parent.mkdir(parents=True, exist_ok=True)
            cv2.imwrite(str(diff), np.full(size, 200, dtype=np.uint8))
        marks = root / "landmarks" / row.original / f"{stem}.npy"
        marks.parent.mkdir(parents=True, exist_ok=True)
        np.save(marks, np.array([[20, 30], [50, 30], [35, 45], [25, 60], [45, 60]], dtype=np.int16))


def make_dataset(root, folds, mode, **options):
    rows = select_rows(folds, fold=0, mode=mode)
    transforms = create_train_transforms(64) if mode == "train" else create_val_transforms(64)
    return DeepFakeClassifierDataset(rows, mode, DatasetOptions(data_root=root, **options), transforms, seed=1)


def test_train_labels_are_clipped_and_validation_labels_are_not(tmp_path):
    folds = folds_frame(reals=6, fakes_per_real=1, frames=(0, 20))
    write_root(tmp_path, folds)
    train = make_dataset(tmp_path, folds, "train", label_smoothing=0.01)
    train.reset(epoch=0, seed=777)
    train_labels = {round(float(train[i]["labels"]), 6) for i in range(len(train))}
    assert train_labels == {0.01, 0.99}
    val = make_dataset(tmp_path, folds, "val")
    sample = val[0]
    assert {float(val[i]["labels"]) for i in range(len(val))} == {0.0, 1.0}
    assert sample["image"].shape == (3, 64, 64) and sample["image"].dtype == torch.float32
    assert sample["img_name"] == f"{sample['video']}/0_0.png"


def test_unreadable_crop_is_logged_and_replaced_by_the_next_row(tmp_path, caplog):
    folds = folds_frame(reals=3, fakes_per_real=1, frames=(0,))
    write_root(tmp_path, folds)
    val = make_dataset(tmp_path, folds, "val")
    broken = val.crop_path(val.rows[0])
    broken.write_bytes(b"not a png")
    with caplog.at_level(logging.WARNING, logger="training.dataset"):
        sample = val[0]
    assert sample["replaced"] == 1
    assert sample["video"] == val.rows[1].video
    assert str(broken) in caplog.text
    assert val[1]["replaced"] == 0


def test_missing_diffs_and_landmarks_are_silent(tmp_path, caplog):
    folds = folds_frame(reals=4, fakes_per_real=1, frames=(0, 10))
    write_root(tmp_path, folds)
    for folder in ("diffs", "landmarks"):
        for path in sorted((tmp_path / folder).rglob("*.*")):
            path.unlink()
    train = make_dataset(tmp_path, folds, "train")
    train.reset(epoch=0, seed=1)
    with caplog.at_level(logging.DEBUG):
        samples = [train[i] for i in range(len(train))]
    assert len(samples) == len(train) and not caplog.records


def test_an_unreadable_or_misshapen_diff_is_logged(tmp_path, caplog):
    folds = folds_frame(reals=4, fakes_per_real=1, frames=(0,))  # reals 0 and 3 (and their fakes) in fold 0
    write_root(tmp_path, folds)
    val = make_dataset(tmp_path, folds, "val")
    fakes = [row for row in val.rows if row.label == 1]
    val.diff_path(fakes[0]).write_bytes(b"not a png")
    cv2.imwrite(str(val.diff_path(fakes[1])), np.full((10, 10), 200, dtype=np.uint8))
    with caplog.at_level(logging.WARNING, logger="training.dataset"):
        for row in fakes:
            assert not val._read_diff(row, (90, 70)).any()
    assert str(val.diff_path(fakes[0])) in caplog.text and "unreadable" in caplog.text
    assert str(val.diff_path(fakes[1])) in caplog.text and "shape (10, 10)" in caplog.text


# ---------------------------------------------------------------- cut-outs

FACE_LANDMARKS = np.array([[30, 40], [70, 40], [50, 60], [35, 80], [65, 80]])  # eyes 40 apart, mouth 30 wide


def blank(height=100, width=100) -> np.ndarray:
    return np.full((height, width, 3), 255, dtype=np.uint8)


def zeroed(image: np.ndarray) -> np.ndarray:
    return (image == 0).all(axis=2)


def test_eyes_cutout_zeroes_a_band_along_the_eye_line():
    image = blank()
    assert remove_landmark(image, FACE_LANDMARKS, ScriptedRandom(0.9)) == "eyes"
    region = zeroed(image)
    ys, xs = np.nonzero(region)
    reach = 40 // 4 + 1  # 10 dilation steps around a 2-px line
    assert region[40, 30] and region[40, 50] and region[40, 70]
    assert ys.min() >= 40 - reach - 1 and ys.max() <= 40 + reach + 1
    assert region[40 - 8, 50] and not region[40 + 14, 50]
    assert not region[80, 50] and not region[60, 50]  # mouth and nose untouched


def test_mouth_cutout_uses_the_mouth_width():
    image = blank()
    assert remove_landmark(image, FACE_LANDMARKS, ScriptedRandom(0.1, 0.9)) == "mouth"
    region = zeroed(image)
    ys, _ = np.nonzero(region)
    assert region[80, 35] and region[80, 65]
    assert ys.min() >= 80 - (30 // 3 + 2) and ys.max() <= 80 + (30 // 3 + 2)
    assert not region[40, 30] and not region[40, 70]


def test_nose_cutout_runs_from_nose_to_eye_middle():
    image = blank()
    assert remove_landmark(image, FACE_LANDMARKS, ScriptedRandom(0.1, 0.1, 0.9)) == "nose"
    region = zeroed(image)
    assert region[60, 50] and region[50, 50] and region[40, 50]
    _, xs = np.nonzero(region)
    assert xs.min() >= 50 - 12 and xs.max() <= 50 + 12
    assert not region[40, 30] and not region[80, 35]


def test_no_landmark_branch_leaves_the_image():
    image = blank()
    assert remove_landmark(image, FACE_LANDMARKS, ScriptedRandom(0.1, 0.1, 0.1)) == "none"
    assert (image == 255).all()


@pytest.fixture(scope="module")
def astronaut_face():
    image = np.ascontiguousarray(skimage.data.astronaut()[0:260, 120:300])
    outline = face_outline_68(image)
    assert outline is not None, "dlib found no face on the astronaut crop"
    return image, outline


@pytest.mark.parametrize("vertical, first_side", [(True, True), (True, False), (False, True), (False, False)])
def test_hull_cutout_zeroes_one_half_of_the_dlib_face(astronaut_face, vertical, first_side):
    image, outline = astronaut_face
    hull = np.zeros(image.shape[:2], np.uint8)
    cv2.fillConvexPoly(hull, cv2.convexHull(outline), 1)
    ys, xs = np.nonzero(hull)
    center_y, center_x = int(ys.mean()), int(xs.mean())
    changed = image.copy()
    region = blackout_hull_half(changed, outline, ScriptedRandom(0.1 if vertical else 0.9, 0.1 if first_side else 0.9))
    assert (changed[region] == 0).all() and (changed[~region] == image[~region]).all()
    assert not (region & ~hull.astype(bool)).any()
    assert 0.3 < region.sum() / hull.sum() < 0.7
    region_ys, region_xs = np.nonzero(region)
    if vertical:
        assert (region_xs < center_x).all() if first_side else (region_xs >= center_x).all()
    else:
        assert (region_ys < center_y).all() if first_side else (region_ys >= center_y).all()


def test_bit_masks_take_the_vertical_middle_from_the_height():
    masks = bit_masks(60, 100)
    assert len(masks) == 6
    top, bottom, left, right, diagonal, anti_diagonal = masks
    assert (top[:30] == 0).all() and (top[30:] == 1).all()  # the original's mid_h would be 50 here
    assert (bottom[:30] == 1).all() and (bottom[30:] == 0).all()
    assert (left[:, :50] == 0).all() and (right[:, 50:] == 0).all() and (left[:, 50:] == 1).all()
    assert diagonal[0, 0] == 0 and diagonal[59, 99] == 0 and diagonal[0, 99] == 1 and diagonal[59, 0] == 1
    assert (anti_diagonal == 1 - diagonal).all()


def test_bit_mask_keeps_a_fakes_changed_pixels():
    for seed in range(20):
        image = blank(60, 100)
        diff = np.zeros((60, 100), np.uint8)
        diff[:20, :40] = 255  # only the top-left is changed
        applied = blackout_bit_mask(image, diff, 0.99, np.random.default_rng(seed))
        if applied:
            assert np.count_nonzero(diff) > 20
            assert (image[zeroed(image)] == 0).all() and zeroed(image).sum() == 60 * 100 // 2
    image, diff = blank(60, 100), np.zeros((60, 100), np.uint8)
    assert blackout_bit_mask(image, diff, 0.99, np.random.default_rng(0)) is False  # no change anywhere
    assert blackout_bit_mask(image, diff, 0.01, np.random.default_rng(0)) is True  # reals always accepted


def test_hardcore_chain_rates():
    rng = np.random.default_rng(3)
    counts = {"landmark": 0, "hull": 0, "bitmask": 0}
    trials = 3000
    for _ in range(trials):
        applied = hardcore_cutout(blank(40, 40), np.zeros((40, 40), np.uint8), FACE_LANDMARKS * 0 + 10, 0.01, rng)
        kind = applied.split(":")[0]
        if kind in counts:
            counts[kind] += 1
    assert counts["landmark"] / trials == pytest.approx(0.7, abs=0.03)
    assert counts["hull"] / trials == pytest.approx(0.06, abs=0.015)
    assert counts["bitmask"] / trials == pytest.approx(0.024, abs=0.01)


# ---------------------------------------------------------------- albumentations parameters

def test_train_transforms_get_the_intended_parameters():
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # albumentations 2 warns (then uses defaults) on unknown argument names
        pipeline = create_train_transforms(128)
        for _ in range(10):
            out = pipeline(image=np.zeros((150, 100, 3), np.uint8), mask=np.zeros((150, 100), np.uint8))
    assert out["image"].shape == (128, 128, 3) and out["mask"].shape == (128, 128)
    (compression, noise, blur, flip, resizes, pad, colour, gray, affine) = pipeline.transforms
    assert isinstance(compression, A.ImageCompression) and compression.quality_range == (60, 100)
    assert compression.compression_type == "jpeg" and compression.p == 0.5
    assert isinstance(noise, A.GaussNoise) and noise.p == 0.1 and noise.mean_range == (0, 0)
    assert noise.std_range == pytest.approx((math.sqrt(10) / 255, math.sqrt(50) / 255))
    assert isinstance(blur, A.GaussianBlur) and blur.blur_limit == (3, 3) and blur.p == 0.05
    impulse = np.zeros((7, 7, 3), np.uint8)
    impulse[3, 3] = 160
    blur.p = 1.0  # 1.x's sigma 0: OpenCV's fixed [1/4, 1/2, 1/4] kernel, every time
    for _ in range(5):
        assert np.array_equal(blur(image=impulse)["image"], cv2.GaussianBlur(impulse, (3, 3), 0))
    assert isinstance(flip, A.HorizontalFlip) and flip.p == 0.5
    assert isinstance(resizes, A.OneOf) and resizes.p == 1
    assert [(t.max_side, t.interpolation_down, t.interpolation_up) for t in resizes.transforms] == [
        (128, cv2.INTER_AREA, cv2.INTER_CUBIC), (128, cv2.INTER_AREA, cv2.INTER_LINEAR),
        (128, cv2.INTER_LINEAR, cv2.INTER_LINEAR)]
    assert isinstance(pad, A.PadIfNeeded) and (pad.min_height, pad.min_width) == (128, 128)
    assert pad.border_mode == cv2.BORDER_CONSTANT and pad.fill == 0 and pad.position == "center"
    assert isinstance(colour, A.OneOf) and colour.p == 0.7
    assert [type(t) for t in colour.transforms] == [A.RandomBrightnessContrast, A.FancyPCA, A.HueSaturationValue]
    brightness, pca, hsv = colour.transforms
    assert brightness.brightness_limit == (-0.2, 0.2) and brightness.contrast_limit == (-0.2, 0.2)
    assert pca.alpha == 0.1 and hsv.hue_shift_limit == (-20, 20) and hsv.sat_shift_limit == (-30, 30)
    assert isinstance(gray, A.ToGray) and gray.p == 0.2
    assert isinstance(affine, A.Affine) and affine.p == 0.5
    assert affine.translate_percent == {"x": (-0.1, 0.1), "y": (-0.1, 0.1)}
    assert affine.scale == {"x": (0.8, 1.2), "y": (0.8, 1.2)} and affine.rotate == (-10, 10)
    assert affine.border_mode == cv2.BORDER_CONSTANT and affine.fill == 0
    # One scale for both axes, as 1.x's ShiftScaleRotate: a square stays a square.
    affine.p, affine.rotate, affine.translate_percent = 1.0, (0, 0), {"x": (0, 0), "y": (0, 0)}
    square = np.zeros((101, 101), np.uint8)
    square[30:71, 30:71] = 255
    for _ in range(10):
        ys, xs = np.nonzero(affine(image=np.dstack([square] * 3))["image"][..., 0] > 127)
        assert abs((ys.max() - ys.min()) - (xs.max() - xs.min())) <= 1


def test_isotropic_resize_honours_each_interpolation():
    small = np.random.default_rng(0).integers(0, 255, (30, 20, 3), dtype=np.uint8)
    outputs = []
    for up in (cv2.INTER_CUBIC, cv2.INTER_LINEAR):
        out = IsotropicResize(90, interpolation_down=cv2.INTER_AREA, interpolation_up=up)(image=small)["image"]
        assert np.array_equal(out, cv2.resize(small, (60, 90), interpolation=up))
        outputs.append(out)
    assert not np.array_equal(*outputs)
    big = np.random.default_rng(1).integers(0, 255, (300, 200, 3), dtype=np.uint8)
    area = IsotropicResize(90, cv2.INTER_AREA, cv2.INTER_CUBIC)(image=big)["image"]
    linear = IsotropicResize(90, cv2.INTER_LINEAR, cv2.INTER_LINEAR)(image=big)["image"]
    assert area.shape == linear.shape == (90, 60, 3) and not np.array_equal(area, linear)


def test_validation_transform_is_isotropic_resize_then_centre_pad():
    image = np.random.default_rng(0).integers(0, 255, (77, 51, 3), dtype=np.uint8)
    expected = put_to_center(isotropic_resize(image, 64), 64)
    assert expected.shape == (64, 64, 3)
    assert (expected[:, :10] == 0).all()  # 51 * 64 / 77 = 42 columns, centred
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        out = create_val_transforms(64)(image=image)["image"]
    assert np.array_equal(out, expected)


# ---------------------------------------------------------------- loss

def bce(logit: float, target: float) -> float:
    p = 1 / (1 + math.exp(-logit))
    return -(target * math.log(p) + (1 - target) * math.log(1 - p))


def test_balanced_loss_averages_the_fake_and_real_parts():
    criterion = WeightedLosses({"BinaryCrossentropy": 1})
    logits = torch.tensor([[0.5], [2.0], [-1.0], [3.0], [-0.2]])
    targets = torch.tensor([[0.99], [0.99], [0.01], [0.01], [0.01]])
    result = balanced_loss(criterion, logits, targets)
    fake = (bce(0.5, 0.99) + bce(2.0, 0.99)) / 2
    real = (bce(-1.0, 0.01) + bce(3.0, 0.01) + bce(-0.2, 0.01)) / 3
    assert float(result.fake_loss) == pytest.approx(fake, rel=1e-5)
    assert float(result.real_loss) == pytest.approx(real, rel=1e-5)
    assert float(result.loss) == pytest.approx((fake + real) / 2, rel=1e-5)


def test_single_class_batch_uses_its_part_alone():
    criterion = WeightedLosses({"BinaryCrossentropy": 1})
    logits = torch.tensor([0.5, 2.0], requires_grad=True)
    result = balanced_loss(criterion, logits, torch.tensor([0.99, 0.99]))
    assert result.real_loss is None
    assert result.loss.item() == pytest.approx((bce(0.5, 0.99) + bce(2.0, 0.99)) / 2, rel=1e-5)
    nothing_kept = balanced_loss(criterion, logits, torch.tensor([0.99, 0.99]), keep=torch.tensor([False, False]))
    assert nothing_kept.loss.item() == 0.0
    nothing_kept.loss.backward()
    assert logits.grad is not None


def test_unknown_loss_name_is_rejected():
    with pytest.raises(ValueError, match="FocalLos"):
        WeightedLosses({"FocalLos": 1})
