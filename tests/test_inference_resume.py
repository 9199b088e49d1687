"""predict_folder.py resumes: a rerun scores nothing, an interrupted run scores only what is missing."""
from __future__ import annotations

import shutil
import sys

import pytest
import torch

from helpers import corrupt_file, face_frames, gradient_frames, run_script, save_release_checkpoint, write_video
from core.models import DeepFakeClassifier

SMALL = ["--encoder", "efficientnet_lite0", "--size", "128", "--frames-per-video", "4", "--batch-size", "4",
         "--workers", "0", "--device", "cpu"]
VIDEOS = ["corrupt.mp4", "face.mp4", "gradient.mp4"]  # sorted: the order the records are written in


def output_files(output):
    return [output, output.with_name(f"{output.name}.errors.csv"), output.with_name(f"{output.name}.crops.csv")]


def progress_of(output):
    return output.with_name(f"{output.name}.progress.jsonl")


@pytest.fixture(scope="module")
def first_run(tmp_path_factory):
    """Three videos (scored, no face, unreadable) scored once from scratch."""
    root = tmp_path_factory.mktemp("resume")
    videos = root / "videos"
    videos.mkdir()
    write_video(videos / "face.mp4", face_frames(8))
    write_video(videos / "gradient.mp4", gradient_frames(8))
    corrupt_file(videos / "corrupt.mp4")
    torch.manual_seed(1)
    save_release_checkpoint(DeepFakeClassifier("efficientnet_lite0", pretrained=False), root / "model_1")
    output = root / "first" / "submission.csv"
    result = predict(root, output)
    assert "resuming" not in result.stderr
    assert "3 of 3 videos processed in this run" in result.stderr
    return root, output, [path.read_bytes() for path in output_files(output)]


def predict(root, output, *extra, check=True):
    return run_script(sys.executable, "predict_folder.py", "--weights-dir", root, "--models", "model_1", "--test-dir",
                      root / "videos", "--output", output, *SMALL, *extra, check=check)


def test_rerun_of_a_finished_run_scores_nothing_and_writes_the_same_files(first_run):
    root, output, first_outputs = first_run
    progress_before = progress_of(output).read_bytes()
    assert len(progress_before.splitlines()) == 1 + len(VIDEOS)  # the run key, then one record per video
    result = predict(root, output)
    assert "resuming: 3 of 3 videos already done" in result.stderr
    assert "0 of 3 videos processed in this run" in result.stderr
    assert "scored 1, no face 1, unreadable 1" in result.stderr
    assert progress_of(output).read_bytes() == progress_before
    assert [path.read_bytes() for path in output_files(output)] == first_outputs


@pytest.mark.slow
def test_interrupted_run_scores_only_the_missing_videos(first_run, tmp_path):
    root, output, first_outputs = first_run
    resumed = tmp_path / "submission.csv"
    key_and_first = progress_of(output).read_bytes().splitlines(keepends=True)[:2]
    half_written = b'{"name": "face.mp4", "sco'  # the write the interruption cut short
    progress_of(resumed).write_bytes(b"".join(key_and_first) + half_written)
    result = predict(root, resumed)
    assert "resuming: 1 of 3 videos already done" in result.stderr
    assert "2 of 3 videos processed in this run" in result.stderr
    assert [path.read_bytes() for path in output_files(resumed)] == first_outputs
    assert progress_of(resumed).read_bytes() == progress_of(output).read_bytes()


@pytest.mark.slow
def test_other_settings_are_refused_until_restart(first_run, tmp_path):
    root, output, _ = first_run
    changed = tmp_path / "submission.csv"
    shutil.copy(progress_of(output), progress_of(changed))
    refused = predict(root, changed, "--size", "96", check=False)
    assert refused.returncode == 2
    assert str(progress_of(changed)) in refused.stderr
    assert "cards.0.input_size: file 128, now 96" in refused.stderr and "--restart" in refused.stderr
    assert not changed.exists()

    restarted = predict(root, changed, "--size", "96", "--restart")
    assert "resuming" not in restarted.stderr
    assert "3 of 3 videos processed in this run" in restarted.stderr
    assert len(progress_of(changed).read_bytes().splitlines()) == 1 + len(VIDEOS)
