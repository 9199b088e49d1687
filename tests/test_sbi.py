"""Self-blended training ("fakes": "sbi"): masks, blends, pair batches, the landmark step, and the trainer."""
from __future__ import annotations

import json
import sys
from pathlib import Path
from types import SimpleNamespace

import cv2
import numpy as np
import pandas as pd
import pytest
import skimage.data
import torch
from torch.utils.data import DataLoader

from helpers import REPO_ROOT, run_script
from core.landmarks68 import landmarks_68
from core.layout import LANDMARKS68_DIR, crops_folder, landmarks68_path, landmarks_path, list_crops, load_dataset
from preprocessing.link_dataset import link_dataset
from training.datasets.classifier_dataset import DataError, DatasetOptions, read_folds, select_rows
from training.datasets.sbi import HULL_VARIANTS, SBIOptions, blend, hull_mask, self_blend
from training.datasets.sbi_dataset import SelfBlendedPairs, SelfBlendedValidation, collate_pairs
from training.tools.config import ConfigError, load_config
from training.transforms.albu import create_train_transforms, create_val_transforms

SBI_CONFIG = REPO_ROOT / "configs" / "sbi_cpu.json"
TORCHRUN = str(Path(sys.executable).parent / "torchrun")
ONE_THREAD = {"OMP_NUM_THREADS": "1", "OMP_WAIT_POLICY": "PASSIVE", "HF_HUB_OFFLINE": "1"}


@pytest.fixture(scope="module")
def face():
    image = np.ascontiguousarray(skimage.data.astronaut()[0:300, 100:350])
    points = landmarks_68(image)
    assert points is not None, "dlib found no face on the astronaut crop"
    return image, points


def face_hull(image: np.ndarray, points: np.ndarray) -> np.ndarray:
    return hull_mask(image.shape, points, "face").astype(bool)


def grown(mask: np.ndarray, pixels: int) -> np.ndarray:
    return cv2.dilate(mask.astype(np.uint8), np.ones((2 * pixels + 1, 2 * pixels + 1), np.uint8)).astype(bool)


@pytest.mark.parametrize("variant", HULL_VARIANTS)
def test_hull_variants_lie_on_the_face(face, variant):
    image, points = face
    hull = face_hull(image, points)
    mask = hull_mask(image.shape, points, variant).astype(bool)
    assert mask.sum() > 0.25 * hull.sum()
    nose_tip, mouth_centre = points[30], points[[48, 54]].mean(axis=0).astype(int)
    assert mask[nose_tip[1], nose_tip[0]] and mask[mouth_centre[1], mouth_centre[0]]
    if variant == "extended":  # the forehead above the brows belongs to it, not to the plain hull
        assert mask.sum() > 1.1 * hull.sum() and mask[~hull].any()
    else:
        assert not mask[~hull].any()


def test_soft_masks_cover_the_face_and_never_the_background(face):
    image, points = face
    hull = hull_mask(image.shape, points, "extended").astype(bool)  # the largest variant: face and forehead
    face_width = points[:, 0].max() - points[:, 0].min()
    background = ~grown(hull, int(0.2 * face_width))
    for seed in range(12):
        _fake, mask = self_blend(image, points, np.random.default_rng(seed))
        assert mask.max() > 0.2 and mask.max() <= 1.0
        assert mask[background].max() == 0, f"seed {seed}: blend weight outside the face"
        # Most of the blend weight lies in the face hull (the deformed, blurred edge may spill a little).
        assert mask[hull].sum() > 0.8 * mask.sum(), seed


def test_blending_an_image_with_its_identical_copy_gives_the_image(face):
    image, points = face
    assert np.array_equal(blend(image, image.copy(), np.ones(image.shape[:2], np.float32)), image)
    plain = SBIOptions(augment=False, ratios=(1.0,))
    fake, mask = self_blend(image, points, np.random.default_rng(0), plain)
    assert mask.max() == pytest.approx(1.0) and np.array_equal(fake, image)
    # With the augmentations the fake differs from the image, and only through the blend of two copies.
    fake, mask = self_blend(image, points, np.random.default_rng(3))
    assert not np.array_equal(fake, image)
    assert min(abs(mask.max() - ratio) for ratio in SBIOptions().ratios) < 1e-6


def test_blend_ratio_comes_from_the_papers_set(face):
    image, points = face
    seen = {round(float(self_blend(image, points, np.random.default_rng(s), SBIOptions(deform=False))[1].max()), 3)
            for s in range(60)}
    assert seen == {0.25, 0.5, 0.75, 1.0}


def test_config_switch_is_validated():
    assert load_config(SBI_CONFIG)["fakes"] == "sbi"
    assert load_config(REPO_ROOT / "configs" / "b7.json")["fakes"] == "dataset"
    assert load_config(REPO_ROOT / "configs" / "sbi_b7.json")["encoder"] == "tf_efficientnet_b7_ns"
    with pytest.raises(ConfigError, match="'fakes' is 'self-blend'; use one of dataset, sbi"):
        load_config(SBI_CONFIG, ["fakes=self-blend"])
    with pytest.raises(ConfigError, match="must be even"):
        load_config(SBI_CONFIG, ["optimizer.batch_size=5"])


def test_blend_settings_are_checked_and_refused_where_no_blend_is_made():
    settings = load_config(SBI_CONFIG)["sbi"]
    assert SBIOptions.from_config(settings) == SBIOptions()  # the defaults are the paper's
    chosen = load_config(SBI_CONFIG, ["sbi.blend_ratios=[1, 0.5]", 'sbi.masks=["lower"]', "sbi.deform=false"])
    assert SBIOptions.from_config(chosen["sbi"]) == SBIOptions(deform=False, ratios=(1.0, 0.5), variants=("lower",))
    for override, message in [("sbi.blend_ratios=[0]", r"'sbi.blend_ratios' must be .* in \(0, 1\]"),
                              ("sbi.blend_ratios=[]", "'sbi.blend_ratios' must be a non-empty list"),
                              ('sbi.masks=["oval"]', "'sbi.masks' must be .* face, extended, components, lower"),
                              ("sbi.deform=1", "'sbi.deform' must be true or false"),
                              ("sbi.augment=false", "unknown config key 'sbi.augment'"),
                              ("sbi.ratio=1", "unknown config key 'sbi.ratio'")]:
        with pytest.raises(ConfigError, match=message):
            load_config(SBI_CONFIG, [override])
    with pytest.raises(ConfigError, match=r'sbi.masks set how self-blended fakes are made.*"fakes": "dataset"'):
        load_config(SBI_CONFIG, ["fakes=dataset", 'sbi.masks=["face"]'])
    assert load_config(REPO_ROOT / "configs" / "b7.json")["sbi"] == settings  # untouched: accepted


# ---------------------------------------------------------------- on the preprocessed demo dataset

def test_landmarks68_step_marks_the_eyes_mtcnn_found(preprocessed_demo):
    """The 68 points of every real crop agree with MTCNN's 5 points: eye centres within a fifth of the crop."""
    entries = load_dataset(preprocessed_demo)
    checked = 0
    for entry in entries.values():
        files = list_crops(crops_folder(preprocessed_demo, entry.video_id))
        if entry.is_fake:
            assert not (preprocessed_demo / LANDMARKS68_DIR / entry.video_id).exists()
            continue
        for name in files:
            points = np.load(landmarks68_path(preprocessed_demo, entry.video_id, name))
            assert points.shape == (68, 2)
            five = landmarks_path(preprocessed_demo, entry.video_id, name)
            if not five.is_file():
                continue
            width = cv2.imread(str(crops_folder(preprocessed_demo, entry.video_id) / name)).shape[1]
            mtcnn_eyes = np.load(five)[:2]
            dlib_eyes = np.stack([points[36:42].mean(axis=0), points[42:48].mean(axis=0)])
            assert np.linalg.norm(mtcnn_eyes - dlib_eyes, axis=1).max() < width / 5, (entry.video_id, name)
            checked += 1
    assert checked > 10


def sbi_options(root: Path) -> DatasetOptions:
    return DatasetOptions(data_root=root, hardcore=False)


def test_a_batch_holds_every_real_crop_next_to_its_blend(preprocessed_demo):
    folds = read_folds(preprocessed_demo / "folds.csv")
    train = SelfBlendedPairs(select_rows(folds, 0, "train"), sbi_options(preprocessed_demo),
                             create_train_transforms(128), seed=5)
    assert (train.all_rows["label"] == 0).all() and len(train.all_rows) > 0
    train.reset(0, 5)
    batch = next(iter(DataLoader(train, batch_size=4, collate_fn=collate_pairs)))
    assert batch["image"].shape == (8, 3, 128, 128)
    assert batch["labels"].view(-1).tolist() == pytest.approx([0.01, 0.99] * 4)
    for i in range(4):
        real, fake = batch["image"][2 * i], batch["image"][2 * i + 1]
        assert batch["video"][2 * i + 1] == batch["video"][2 * i] + "_sbi"
        assert batch["img_name"][2 * i].split("/")[1] == batch["img_name"][2 * i + 1].split("/")[1]
        assert not real.equal(fake)
        # One albumentations draw for both: same flip, crop and pose, so the pair correlates strongly.
        assert np.corrcoef(real.flatten().numpy(), fake.flatten().numpy())[0, 1] > 0.8


def test_validation_blends_are_fixed_and_scored_as_their_own_videos(preprocessed_demo):
    folds = read_folds(preprocessed_demo / "folds.csv")
    rows = select_rows(folds, 0, "val")
    val = SelfBlendedValidation(rows, sbi_options(preprocessed_demo), create_val_transforms(128), seed=3)
    assert len(val) == 2 * (rows["label"] == 0).sum()
    first, again = val[1], val[1]
    assert first["image"].equal(again["image"]) and first["labels"].item() == 1.0
    assert first["video"] == val[0]["video"] + "_sbi" and val[0]["labels"].item() == 0.0


def test_the_configs_blend_ratio_makes_the_trainers_blends(preprocessed_demo):
    """Validation blends draw from a fixed seed per crop, so only the ratio r differs between these configs:
    blend_r = t + r * m * (s - t) for the same mask m, source s and target t. Hence the blend at 1 lies twice as
    far from the one at 0.5 as from the one at 0.75."""
    from training.pipelines.train_classifier import make_datasets, parse_args

    args = parse_args(["--config", str(SBI_CONFIG), "--data-dir", str(preprocessed_demo), "--fold", "0"])
    main = SimpleNamespace(is_main=True)
    reals, blends = {}, {}
    for ratio in (1, 0.75, 0.5):
        train, val = make_datasets(load_config(SBI_CONFIG, [f"sbi.blend_ratios=[{ratio}]"]), args, main)
        assert train.blend == val.blend == SBIOptions(ratios=(ratio,))
        reals[ratio] = torch.stack([val[2 * i]["image"] for i in range(6)])
        blends[ratio] = torch.stack([val[2 * i + 1]["image"] for i in range(6)])
    assert reals[1].equal(reals[0.5])
    far, near = (float((blends[1] - blends[r]).abs().sum()) for r in (0.5, 0.75))
    assert near > 0 and 1.8 < far / near < 2.2


def test_trainer_refuses_sbi_without_68_point_landmarks(tmp_path):
    from training.pipelines.train_classifier import make_datasets, parse_args

    pd.DataFrame([["a", "0_0.png", 0, "a", 0, 1], ["b", "0_0.png", 0, "b", 0, 0]],
                 columns=["video", "file", "label", "original", "frame", "fold"]).to_csv(tmp_path / "folds.csv",
                                                                                          index=False)
    args = parse_args(["--config", str(SBI_CONFIG), "--data-dir", str(tmp_path)])
    with pytest.raises(DataError, match="generate_landmarks68 has not run"):
        make_datasets(load_config(SBI_CONFIG), args, context=None)


@pytest.mark.parametrize("option", ["--no-hardcore", "--no-oversample", "--only-changed-frames"])
def test_trainer_refuses_options_that_do_nothing_under_sbi(tmp_path, option):
    from training.pipelines.train_classifier import make_datasets, parse_args

    pd.DataFrame([["a", "0_0.png", 0, "a", 0, 1], ["b", "0_0.png", 0, "b", 0, 0]],
                 columns=["video", "file", "label", "original", "frame", "fold"]).to_csv(tmp_path / "folds.csv",
                                                                                          index=False)
    (tmp_path / LANDMARKS68_DIR).mkdir()
    args = parse_args(["--config", str(SBI_CONFIG), "--data-dir", str(tmp_path), option])
    with pytest.raises(DataError, match=f"{option} .*drop the option"):
        make_datasets(load_config(SBI_CONFIG), args, context=None)


@pytest.mark.slow
def test_sbi_trains_under_torchrun_on_a_dataset_of_real_videos_only(demo_root, tmp_path):
    """preprocess_data.sh on a root without a single fake, then two CPU processes of SBI training."""
    reals = [entry.name for entry in load_dataset(demo_root).values() if not entry.is_fake]
    root = link_dataset(demo_root, tmp_path / "reals", reals)
    run_script("bash", "preprocess_data.sh", root, "--workers", "2", timeout=900)
    folds = read_folds(root / "folds.csv")
    assert len(folds) > 0 and (folds["label"] == 0).all()
    assert not any((root / "diffs").glob("*/*.png"))
    assert len(list((root / LANDMARKS68_DIR).glob("*/*.npy"))) == len(folds)
    manifest = json.loads((root / "manifests" / "generate_landmarks68.json").read_text())
    assert sorted(manifest["videos"]) == sorted(Path(name).stem for name in reals)

    out = tmp_path / "run"
    result = run_script(TORCHRUN, "--standalone", "--nproc_per_node", "2", "training/pipelines/train_classifier.py",
                        "--config", SBI_CONFIG, "--data-dir", root, "--output-dir", out / "weights", "--logdir",
                        out / "logs", "--prefix", "sbi_", "--workers", "0", "--epochs", "1", "--batches-per-epoch",
                        "2", "--override", "optimizer.batch_size=4", "--override", "size=96", env=ONE_THREAD,
                        timeout=600)
    output = result.stdout + result.stderr
    assert "2 process(es) on cpu" in output and "[val] epoch 0" in output
    auc = float(output.split(" auc ")[1].split()[0])  # real videos vs their blends: both classes present
    assert 0.0 <= auc <= 1.0
    assert (out / "weights" / "sbi_DeepFakeClassifier_efficientnet_lite0_0_last").is_file()
