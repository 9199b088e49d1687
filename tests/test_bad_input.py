"""Input that used to give an empty or silently wrong result: each now gives a result or a clear, counted message."""
from __future__ import annotations

import csv
import json
import sys
from pathlib import Path

import pytest
import torch

from helpers import REPO_ROOT, face_frames, run_script, save_release_checkpoint, write_video
from core.checkpoints import CheckpointError, read_checkpoint
from core.models import DeepFakeClassifier

SMALL = ["--encoder", "efficientnet_lite0", "--size", "128", "--frames-per-video", "4", "--batch-size", "4"]
# Each container with a codec it usually carries; the upper-case extension is the camera's habit.
VIDEOS = {"camera.MP4": "libx264", "phone.mov": "libx264", "old.avi": "mpeg4", "rip.mkv": "libx264",
          "web.webm": "libvpx-vp9"}


@pytest.fixture(scope="module")
def weights(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("weights")
    torch.manual_seed(0)
    save_release_checkpoint(DeepFakeClassifier("efficientnet_lite0", pretrained=False), folder / "model")
    return folder


def predict(weights: Path, test_dir: Path, output: Path, *extra):
    return run_script(sys.executable, "predict_folder.py", "--weights-dir", weights, "--models", "model",
                      "--test-dir", test_dir, "--output", output, "--workers", "1", *SMALL, *extra, check=False,
                      timeout=600)


@pytest.mark.slow
def test_predict_scores_every_video_container_in_any_case_and_names_skipped_files(weights, tmp_path):
    videos = tmp_path / "videos"
    videos.mkdir()
    for name, codec in VIDEOS.items():
        write_video(videos / name, face_frames(8), codec=codec)
    (videos / "notes.txt").write_text("not a video")
    (videos / "thumbnails").mkdir()
    output = tmp_path / "submission.csv"
    result = predict(weights, videos, output)
    assert result.returncode == 0, result.stderr
    with open(output, newline="") as handle:
        labels = {row["filename"]: float(row["label"]) for row in csv.DictReader(handle)}
    assert sorted(labels) == sorted(VIDEOS)
    assert all(0 < label < 1 and label != 0.5 for label in labels.values()), labels  # 0.5: not scored
    assert "skipped notes.txt: not a video container (.txt)" in result.stderr
    assert "skipped thumbnails: a folder" in result.stderr


@pytest.mark.slow
def test_predict_without_any_video_fails_and_points_to_a_part_folder(weights, tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    result = predict(weights, empty, tmp_path / "a.csv")
    assert result.returncode != 0
    assert f"no video file in {empty}" in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "a.csv").exists()

    dataset = tmp_path / "dfdc"
    for part in (0, 1):
        (dataset / f"dfdc_train_part_{part}").mkdir(parents=True)
    (dataset / "folds.csv").write_text("video,fold\n")
    result = predict(weights, dataset, tmp_path / "b.csv")
    assert result.returncode != 0
    assert f"--test-dir {dataset / 'dfdc_train_part_0'}" in result.stderr
    assert "skipped folds.csv" in result.stderr and "Traceback" not in result.stderr


@pytest.mark.slow
def test_every_preprocessing_step_names_and_counts_videos_missing_from_metadata(tmp_path):
    """Part 0 has metadata {}; part 1 lists one video and has a second one on disk that it does not list."""
    root = tmp_path / "dfdc"
    for part, listed in ((0, {}), (1, {"listed.mp4": {"label": "REAL", "split": "train"}})):
        folder = root / f"dfdc_train_part_{part}"
        folder.mkdir(parents=True)
        (folder / "metadata.json").write_text(json.dumps(listed))
    write_video(root / "dfdc_train_part_0" / "orphan.mp4", face_frames(10))
    write_video(root / "dfdc_train_part_1" / "listed.mp4", face_frames(10))
    write_video(root / "dfdc_train_part_1" / "extra.mov", face_frames(10))
    result = run_script("bash", "preprocess_data.sh", root, "--workers", "1", timeout=600)
    steps = [line[4:] for line in result.stderr.splitlines() if line.startswith("=== ")]
    assert len(steps) >= 6 and steps[0] == "detect_original_faces" and "generate_folds" in steps
    for step in steps:
        summary = [line for line in result.stdout.splitlines() + result.stderr.splitlines()
                   if line.startswith(f"[{step}]")]
        assert f"[{step}]   on disk but not in metadata.json: 2" in summary, (step, summary)
        for path in (root / "dfdc_train_part_0" / "orphan.mp4", root / "dfdc_train_part_1" / "extra.mov"):
            assert any(str(path) in line for line in summary), (step, path, summary)
    assert "[detect_original_faces] done 1," in result.stdout + result.stderr
    with open(root / "folds.csv", newline="") as handle:
        assert {row["video"] for row in csv.DictReader(handle)} == {"listed"}  # ids, without the extension


def test_zero_byte_checkpoint_names_the_cause(tmp_path):
    empty = tmp_path / "model.pth"
    empty.write_bytes(b"")
    with pytest.raises(CheckpointError, match=r"empty file \(0 bytes\)") as caught:
        read_checkpoint(empty)
    assert str(empty) in str(caught.value)
    truncated = tmp_path / "truncated.pth"
    torch.save({"state_dict": {"w": torch.zeros(1000)}}, truncated)
    truncated.write_bytes(truncated.read_bytes()[:500])
    with pytest.raises(CheckpointError, match=r"cannot read checkpoint \(.+\)"):
        read_checkpoint(truncated)


@pytest.mark.slow
def test_trainer_requires_data_dir():
    result = run_script(sys.executable, "training/pipelines/train_classifier.py", "--config",
                        REPO_ROOT / "configs" / "demo_cpu.json", check=False, timeout=300)
    assert result.returncode == 2
    assert "the following arguments are required: --data-dir" in result.stderr
