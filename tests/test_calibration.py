"""Calibration: a temperature and bias fitted on video scores lower an over-confident scorer's log loss on videos
the fit did not see, keep the AUC, and predict_folder.py --calibration maps every score through the same curve."""
from __future__ import annotations

import csv
import json
import sys

import numpy as np
import pytest
import torch
from scipy.special import expit, logit
from sklearn.metrics import log_loss, roc_auc_score

from helpers import face_frames, gradient_frames, run_script, save_release_checkpoint, write_video
from core.models import DeepFakeClassifier
from inference.calibration import Calibration, CalibrationError, cross_validated, fit_calibration


def over_confident_scores(n: int = 300, seed: int = 0):
    """Labels drawn from true probabilities q, and scores p = sigmoid(4 logit(q) + 1): right order, far too sure."""
    rng = np.random.default_rng(seed)
    q = expit(rng.normal(0, 1.5, n))
    y = (rng.random(n) < q).astype(int)
    return y, expit(4 * logit(q) + 1)


def test_fit_recovers_a_known_distortion_and_keeps_the_order():
    y, p = over_confident_scores(4000)
    calibration = fit_calibration(y, p)
    assert calibration.temperature == pytest.approx(4, rel=0.15)  # undoes the factor 4 ...
    assert calibration.bias == pytest.approx(-1 / 4, abs=0.15)  # ... and the shift (1 / T)
    calibrated = calibration.apply(p)
    assert roc_auc_score(y, calibrated) == roc_auc_score(y, p)
    assert log_loss(y, calibrated) < 0.8 * log_loss(y, p)


def test_cross_validated_log_loss_drops():
    y, p = over_confident_scores()
    out_of_fold, folds = cross_validated(y, p, 5)
    assert folds == 5
    assert log_loss(y, out_of_fold) < 0.8 * log_loss(y, p)


def test_one_class_or_tiny_holdout_is_refused():
    with pytest.raises(CalibrationError, match="one class"):
        fit_calibration([1, 1, 1], [0.2, 0.5, 0.9])
    with pytest.raises(CalibrationError, match="2 reals and 2 fakes"):
        cross_validated(np.array([1, 1, 1, 0]), np.array([0.2, 0.5, 0.9, 0.1]), 5)


def write_predictions(path, names, scores):
    path.write_text("filename,label\n" + "".join(f"{n},{s:.8f}\n" for n, s in zip(names, scores)))


def test_evaluate_fit_calibration_cli(tmp_path, python):
    y, p = over_confident_scores()
    names = [f"v{i:03d}.mp4" for i in range(len(y))]
    write_predictions(tmp_path / "holdout.csv", names, p)
    (tmp_path / "labels.csv").write_text("filename,label\n" + "".join(f"{n},{t}\n" for n, t in zip(names, y)))
    out = tmp_path / "calibration.json"
    result = run_script(python, "evaluate.py", "--predictions", tmp_path / "holdout.csv", "--labels",
                        tmp_path / "labels.csv", "--fit-calibration", out)
    assert "5-fold cross-validation" in result.stderr
    saved = json.loads(out.read_text())
    check = saved["cross_validation"]
    assert check["log_loss_after"] < 0.8 * check["log_loss_before"]
    assert check["log_loss_before"] == pytest.approx(log_loss(y, p), abs=1e-6)
    assert saved["checkpoints"] is None and "checkpoints are unknown" in result.stderr
    assert saved["temperature"] > 1  # over-confident scores are softened
    assert saved["fitted_on"]["videos"] == len(y)


@pytest.fixture(scope="module")
def scored_folder(tmp_path_factory):
    root = tmp_path_factory.mktemp("calibrated_predict")
    videos = root / "videos"
    videos.mkdir()
    frames = face_frames(10)
    write_video(videos / "a.mp4", frames)
    write_video(videos / "b.mp4", [np.ascontiguousarray(f[:, ::-1]) for f in frames])
    write_video(videos / "c.mp4", [np.clip(f.astype(int) + 40, 0, 255).astype(np.uint8) for f in frames])
    write_video(videos / "noface.mp4", gradient_frames(6))
    torch.manual_seed(3)
    save_release_checkpoint(DeepFakeClassifier("efficientnet_lite0", pretrained=False), root / "model")
    output = root / "out" / "raw.csv"
    run_script(sys.executable, *predict_args(root, output))
    return root, output, read_scores(output)  # the raw scores: a test below rewrites the output calibrated


def predict_args(root, output):
    return ["predict_folder.py", "--weights-dir", root, "--models", "model", "--test-dir", root / "videos",
            "--output", output, "--workers", "0", "--encoder", "efficientnet_lite0", "--size", "128",
            "--frames-per-video", "4"]


def read_scores(path):
    with open(path, newline="") as handle:
        return {row["filename"]: float(row["label"]) for row in csv.DictReader(handle)}


@pytest.mark.slow
def test_predict_folder_applies_calibration_monotonically(scored_folder, python, tmp_path):
    root, output, raw = scored_folder
    raw_crops = (output.parent / "raw.csv.crops.csv").read_text()
    calibration = tmp_path / "calibration.json"
    calibration.write_text(json.dumps({"temperature": 0.5, "bias": 0.3, "checkpoints": None}))
    # the same output: the progress file's raw scores are reused (nothing rescored), then calibrated
    result = run_script(python, *predict_args(root, output), "--calibration", calibration)
    assert "0 of 4 videos processed in this run" in result.stderr
    calibrated = read_scores(output)
    scored = sorted(name for name in raw if name != "noface.mp4")
    expected = Calibration(0.5, 0.3).apply(np.array([raw[n] for n in scored]))
    assert [calibrated[n] for n in scored] == pytest.approx(list(expected), abs=1e-6)
    assert len(set(raw[n] for n in scored)) == 3  # three different scores, whose order the calibration keeps
    assert sorted(scored, key=raw.get) == sorted(scored, key=calibrated.get)
    assert calibrated["noface.mp4"] == raw["noface.mp4"] == 0.5  # unscored stays 0.5
    assert (output.parent / "raw.csv.crops.csv").read_text() == raw_crops  # crops keep the model's scores
    assert json.loads((output.parent / "raw.csv.calibration.json").read_text())["temperature"] == 0.5
    labels = tmp_path / "labels.csv"
    labels.write_text("filename,label\na.mp4,0\nb.mp4,1\nc.mp4,1\n")
    refused = run_script(python, "evaluate.py", "--predictions", output, "--labels", labels, "--fit-calibration",
                         tmp_path / "again.json", check=False)
    assert refused.returncode == 2 and "holds calibrated scores" in refused.stderr


@pytest.mark.slow
def test_calibration_of_another_checkpoint_is_refused(scored_folder, python, tmp_path):
    root, _output, _raw = scored_folder
    calibration = tmp_path / "calibration.json"
    other = {"name": "model", "bytes": 1, "mtime_ns": 1}
    calibration.write_text(json.dumps({"temperature": 2.0, "bias": 0.0, "checkpoints": [other]}))
    result = run_script(python, *predict_args(root, tmp_path / "x.csv"), "--calibration", calibration, check=False)
    assert result.returncode == 2 and "was fitted for model" in result.stderr
    assert not (tmp_path / "x.csv").exists()


@pytest.mark.slow
def test_a_calibration_in_the_checkpoint_card_is_applied(scored_folder, python, tmp_path):
    from core.card import ModelCard
    from core.checkpoints import read_checkpoint

    root, _output, raw = scored_folder
    checkpoint = read_checkpoint(root / "model")
    card = ModelCard("efficientnet_lite0", 128, frames_per_video=4, calibration={"temperature": 2.0, "bias": -0.5})
    torch.save({"state_dict": checkpoint["state_dict"], "card": card.to_dict()}, tmp_path / "carded")
    out = tmp_path / "carded.csv"
    result = run_script(python, "predict_folder.py", "--weights-dir", tmp_path, "--models", "carded", "--test-dir",
                        root / "videos", "--output", out, "--workers", "0")
    assert "calibration from carded's card" in result.stderr
    carded = read_scores(out)
    scored = sorted(name for name in raw if name != "noface.mp4")
    expected = Calibration(2.0, -0.5).apply(np.array([raw[n] for n in scored]))
    assert [carded[n] for n in scored] == pytest.approx(list(expected), abs=1e-5)
