"""predict_folder.py run as a user runs it, on generated videos: good, faceless, corrupt and truncated."""
from __future__ import annotations

import csv
from pathlib import Path

import pytest
import torch

from helpers import (corrupt_file, face_frames, gradient_frames, run_script, save_release_checkpoint,
                     write_truncated_video, write_video)
from core.models import DeepFakeClassifier

SMALL = ["--encoder", "efficientnet_lite0", "--size", "128", "--frames-per-video", "6", "--batch-size", "4"]


@pytest.fixture(scope="module")
def scene(tmp_path_factory):
    root = tmp_path_factory.mktemp("predict")
    videos = root / "videos"
    videos.mkdir()
    write_video(videos / "face.mp4", face_frames(10))
    write_truncated_video(videos / "face_truncated.mp4", face_frames(24), keep_fraction=0.6)
    write_video(videos / "gradient.mp4", gradient_frames(10))
    corrupt_file(videos / "corrupt.mp4")
    (videos / "empty.mp4").write_bytes(b"")
    weights = root / "weights"
    weights.mkdir()
    for seed in (1, 2):
        torch.manual_seed(seed)
        save_release_checkpoint(DeepFakeClassifier("efficientnet_lite0", pretrained=False), weights / f"model_{seed}")
    return root


def read_rows(path):
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def test_every_video_gets_a_row_and_failures_are_named(scene, python):
    output = scene / "out" / "submission.csv"
    result = run_script(python, "predict_folder.py", "--weights-dir", scene / "weights", "--models", "model_1",
                        "model_2", "--test-dir", scene / "videos", "--output", output, "--workers", "2",
                        "--save-crops", scene / "thumbs", *SMALL)
    rows = read_rows(output)
    assert [r["filename"] for r in rows] == sorted(p.name for p in (scene / "videos").glob("*.mp4"))
    labels = {r["filename"]: float(r["label"]) for r in rows}
    for good in ("face.mp4", "face_truncated.mp4"):
        assert 0 < labels[good] < 1 and labels[good] != 0.5
    for bad in ("gradient.mp4", "corrupt.mp4", "empty.mp4"):
        assert labels[bad] == 0.5
    errors = {r["filename"]: r["reason"] for r in read_rows(f"{output}.errors.csv")}
    assert set(errors) == {"gradient.mp4", "corrupt.mp4", "empty.mp4"}
    assert errors["gradient.mp4"].startswith("no face")
    assert errors["corrupt.mp4"].startswith("unreadable") and "corrupt.mp4" in errors["corrupt.mp4"]
    assert "empty file" in errors["empty.mp4"]
    assert "scored 2, no face 1, unreadable 2" in result.stderr

    crops = read_rows(f"{output}.crops.csv")
    face_crops = [c for c in crops if c["filename"] == "face.mp4"]
    assert len(face_crops) == 6  # one face in each of the 6 sampled frames
    assert all(0 < float(c["score"]) < 1 for c in crops)
    assert all(Path(c["thumbnail"]).is_file() for c in crops)


@pytest.mark.slow
def test_torchrun_ranks_split_and_merge(scene, python, tmp_path):
    """Two CPU ranks each take half of the sorted names; rank 0 writes the same file as a single process."""
    single, merged = tmp_path / "single.csv", tmp_path / "merged.csv"
    common = ["--weights-dir", scene / "weights", "--models", "model_1", "--test-dir", scene / "videos",
              "--workers", "0", *SMALL]
    run_script(python, "predict_folder.py", *common, "--output", single)
    run_script(python, "-m", "torch.distributed.run", "--nproc-per-node", "2", "--master-port", "29517",
               "predict_folder.py", *common, "--output", merged, env={"OMP_NUM_THREADS": "1"})
    merged_rows, single_rows = read_rows(merged), read_rows(single)
    assert [r["filename"] for r in merged_rows] == [r["filename"] for r in single_rows]
    for got, want in zip(merged_rows, single_rows):  # one torch thread per rank: last-bit float differences
        assert float(got["label"]) == pytest.approx(float(want["label"]), abs=1e-6)
    assert read_rows(f"{merged}.errors.csv") == read_rows(f"{single}.errors.csv")


@pytest.mark.slow
def test_wrong_encoder_is_reported(scene, python, tmp_path):
    result = run_script(python, "predict_folder.py", "--weights-dir", scene / "weights", "--models", "model_1",
                        "--test-dir", scene / "videos", "--output", tmp_path / "x.csv", "--encoder",
                        "efficientnet_b0", "--device", "cpu", check=False)
    assert result.returncode == 2
    assert "model_1" in result.stderr and "missing: encoder.blocks" in result.stderr
