"""Preprocessing steps record what they made; settings that do not fit what is on disk are refused up front."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import pandas as pd
import pytest

from core.layout import list_crops, load_dataset
from preprocessing import detect_original_faces, extract_crops, generate_folds
from preprocessing.manifest import recorded_settings, recorded_videos
from training.datasets.classifier_dataset import crop_frame_step, select_rows


def step(module, root: Path, *extra: str):
    return module.main(["--root-dir", str(root), "--workers", "1", *extra])


def crop_frames(root: Path) -> set[int]:
    return {int(name.split("_")[0]) for folder in (root / "crops").iterdir() for name in list_crops(folder)}


def test_a_stride_that_misses_crop_frames_is_refused_before_any_work(demo_root, tmp_path):
    root = Path(shutil.copytree(demo_root, tmp_path / "data"))
    with pytest.raises(SystemExit) as info:
        step(detect_original_faces, root, "--frame-stride", "3")
    message = str(info.value)
    assert "--frame-stride 3 does not divide --crop-every 10" in message and "multiples of frame 30" in message
    assert "--crop-every 3" in message
    assert not (root / "boxes").exists() and not (root / "manifests").exists()


def test_crops_follow_the_frames_step_1_recorded(demo_root, tmp_path):
    root = Path(shutil.copytree(demo_root, tmp_path / "data"))
    step(detect_original_faces, root, "--frame-stride", "3", "--crop-every", "6")
    assert recorded_settings(root, "detect_original_faces")["crop_every"] == 6
    step(extract_crops, root)
    frames = crop_frames(root)
    assert frames and all(frame % 6 == 0 for frame in frames) and {0, 6, 12, 18, 24} <= frames
    reals = {e.video_id for e in load_dataset(root).values() if not e.is_fake}
    assert recorded_videos(root, "detect_original_faces") == reals
    assert recorded_videos(root, "extract_crops") == set(load_dataset(root))


def test_a_rerun_with_another_stride_is_refused_naming_both_values(preprocessed_demo, tmp_path):
    root = Path(shutil.copytree(preprocessed_demo, tmp_path / "data"))
    boxes_before = {p.name: p.read_bytes() for p in (root / "boxes").iterdir()}
    with pytest.raises(SystemExit) as info:
        step(detect_original_faces, root, "--frame-stride", "5")
    message = str(info.value)
    assert "frame_stride: on disk 10, asked 5" in message and "delete" in message
    assert {p.name: p.read_bytes() for p in (root / "boxes").iterdir()} == boxes_before


def test_crops_made_from_other_boxes_are_refused(preprocessed_demo, tmp_path):
    root = Path(shutil.copytree(preprocessed_demo, tmp_path / "data"))
    manifest = root / "manifests" / "detect_original_faces.json"
    recorded = json.loads(manifest.read_text())
    recorded["settings"]["frame_stride"] = 5  # as if step 1 had been redone with another stride
    manifest.write_text(json.dumps(recorded))
    with pytest.raises(SystemExit, match="boxes.frame_stride: on disk 10, asked 5"):
        step(extract_crops, root)


def test_a_step_whose_input_step_never_ran_says_what_to_run(demo_root, tmp_path):
    root = Path(shutil.copytree(demo_root, tmp_path / "data"))
    with pytest.raises(SystemExit, match="detect_original_faces has not run"):
        step(extract_crops, root)
    with pytest.raises(SystemExit, match="extract_crops has not run"):
        step(generate_folds, root)


def test_validation_frames_come_from_the_crops_that_exist():
    """Crops every 10th frame: frame % 20 as the original; crops every 3rd frame: every 2nd of those."""
    def folds(frames):
        return pd.DataFrame({"video": "v", "file": [f"{f}_0.png" for f in frames], "label": 0, "original": "v",
                             "frame": frames, "fold": 0})
    original = folds(list(range(0, 300, 10)))
    assert crop_frame_step(original) == 10
    assert select_rows(original, 0, "val")["frame"].tolist() == list(range(0, 300, 20))
    every_third = folds(list(range(0, 300, 3)))
    assert select_rows(every_third, 0, "val")["frame"].tolist() == list(range(0, 300, 6))
