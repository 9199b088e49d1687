"""evaluate.py: metrics equal scikit-learn's on fixed inputs; plots and the HTML report are written."""
from __future__ import annotations

import json

import cv2
import numpy as np
import pytest
from sklearn.metrics import accuracy_score, average_precision_score, log_loss, roc_auc_score
from skimage import data as skdata

from helpers import run_script
from inference.metrics import compute_metrics, expected_calibration_error

Y = np.array([1, 1, 1, 0, 0, 0, 1, 0])
P = np.array([0.9, 0.6, 0.2, 0.1, 0.4, 0.7, 1.0, 0.0])  # includes 0 and 1: Kaggle clipping matters


def test_metrics_equal_sklearn():
    metrics = compute_metrics(Y, P)
    clipped = np.clip(P, 1e-15, 1 - 1e-15)
    assert metrics["log_loss"] == pytest.approx(log_loss(Y, clipped))
    fake = -np.log(clipped[Y == 1]).mean()
    real = -np.log(1 - clipped[Y == 0]).mean()
    assert metrics["balanced_log_loss"] == pytest.approx((fake + real) / 2)
    assert metrics["roc_auc"] == pytest.approx(roc_auc_score(Y, P))
    assert metrics["average_precision"] == pytest.approx(average_precision_score(Y, P))
    assert metrics["accuracy"] == pytest.approx(accuracy_score(Y, P > 0.5)) == 6 / 8
    assert (metrics["videos"], metrics["fakes"], metrics["reals"]) == (8, 4, 4)


def test_expected_calibration_error_by_hand():
    # bins: [0.0-0.1): p 0.0 (y 0); [0.1-0.2): 0.1 (0); [0.2-0.3): 0.2 (1); [0.4-0.5): 0.4 (0);
    # [0.6-0.7): 0.6 (1); [0.7-0.8): 0.7 (0); [0.9-1.0]: 0.9 (1), 1.0 (1)
    expected = (abs(0 - 0.0) + abs(0 - 0.1) + abs(1 - 0.2) + abs(0 - 0.4) + abs(1 - 0.6) + abs(0 - 0.7)
                + 2 * abs(1 - 0.95)) / 8
    assert expected_calibration_error(Y, P) == pytest.approx(expected)


def test_evaluate_cli_writes_report(tmp_path, python):
    names = [f"v{i}.mp4" for i in range(len(Y))]
    predictions = tmp_path / "sub.csv"
    predictions.write_text("filename,label\n" + "".join(f"{n},{p}\n" for n, p in zip(names, P)) + "extra.mp4,0.5\n")
    metadata = {n: {"label": "FAKE" if y else "REAL"} for n, y in zip(names, Y)}
    metadata["unscored.mp4"] = {"label": "REAL"}
    (tmp_path / "metadata.json").write_text(json.dumps(metadata))
    thumb = tmp_path / "thumb.jpg"
    cv2.imwrite(str(thumb), cv2.resize(skdata.astronaut(), (64, 64)))
    # v2 (FAKE scored 0.2) is the most confident mistake... after v5 (REAL at 0.7): both appear
    (tmp_path / "sub.csv.crops.csv").write_text("filename,frame,face,score,thumbnail\n"
                                                f"v2.mp4,0,0,0.150000,{thumb}\nv2.mp4,10,0,0.250000,{thumb}\n")
    out = tmp_path / "eval"
    result = run_script(python, "evaluate.py", "--predictions", predictions, "--labels", tmp_path / "metadata.json",
                        "--out-dir", out)
    printed = dict(line.split(None, 1) for line in result.stdout.strip().splitlines())
    assert float(printed["roc_auc"]) == pytest.approx(roc_auc_score(Y, P), abs=1e-6)
    assert float(printed["log_loss"]) == pytest.approx(log_loss(Y, np.clip(P, 1e-15, 1 - 1e-15)), abs=1e-6)
    assert printed["predictions_without_label"] == "1" and printed["labels_without_prediction"] == "1"
    assert "extra.mp4" in result.stderr and "unscored.mp4" in result.stderr
    for image in ("roc.png", "hist.png"):
        assert (out / image).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    html = (out / "report.html").read_text()
    assert "v2.mp4" in html and "v5.mp4" in html and "data:image/jpeg;base64" in html and "0.150" in html
    assert json.loads((out / "metrics.json").read_text())["videos"] == 8


def test_evaluate_rejects_unknown_labels(tmp_path, python):
    (tmp_path / "sub.csv").write_text("filename,label\na.mp4,0.3\n")
    (tmp_path / "labels.csv").write_text("filename,label\na.mp4,maybe\n")
    result = run_script(python, "evaluate.py", "--predictions", tmp_path / "sub.csv", "--labels",
                        tmp_path / "labels.csv", check=False)
    assert result.returncode != 0 and "a.mp4" in result.stderr and "maybe" in result.stderr


def test_missing_inputs_get_one_line_each_before_any_metric(tmp_path, python):
    (tmp_path / "sub.csv").write_text("filename,label\na.mp4,0.3\n")
    result = run_script(python, "evaluate.py", "--predictions", tmp_path / "nope.csv", "--labels",
                        tmp_path / "labels.csv", tmp_path / "meta.json", "--crops", tmp_path / "crops.csv", check=False)
    assert result.returncode == 2 and result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert lines == [f"error: --predictions {tmp_path / 'nope.csv'}: file not found",
                     f"error: --labels {tmp_path / 'labels.csv'}: file not found",
                     f"error: --labels {tmp_path / 'meta.json'}: file not found",
                     f"error: --crops {tmp_path / 'crops.csv'}: file not found"]
    assert not (tmp_path / "nope_eval").exists()


@pytest.mark.slow
def test_one_class_gives_null_and_a_note_not_nan(tmp_path, python):
    (tmp_path / "sub.csv").write_text("filename,label\na.mp4,0.3\nb.mp4,0.9\n")
    (tmp_path / "labels.csv").write_text("filename,label\na.mp4,FAKE\nb.mp4,FAKE\n")
    out = tmp_path / "eval"
    result = run_script(python, "evaluate.py", "--predictions", tmp_path / "sub.csv", "--labels",
                        tmp_path / "labels.csv", "--out-dir", out, env={"PYTHONWARNINGS": "default"})
    text = (out / "metrics.json").read_text()
    assert "NaN" not in text
    metrics = json.loads(text)
    assert metrics["roc_auc"] is None and metrics["balanced_log_loss"] is None and metrics["fakes"] == 2
    assert any("roc_auc" in note and "no reals" in note for note in metrics["notes"])
    assert "no reals" in result.stderr and "Warning" not in result.stderr
    assert "roc_auc                      n/a" in result.stdout
    assert (out / "roc.png").read_bytes()[:4] == b"\x89PNG"


@pytest.mark.slow
def test_report_names_its_inputs_and_explains_each_metric(tmp_path, python):
    from inference.report import METRIC_HELP

    names = [f"v{i}.mp4" for i in range(len(Y))]
    (tmp_path / "sub.csv").write_text("filename,label\n" + "".join(f"{n},{p}\n" for n, p in zip(names, P)))
    (tmp_path / "labels.csv").write_text("filename,label,group\n" + "".join(
        f"{n},{y},{'g1' if i % 2 else 'g2'}\n" for i, (n, y) in enumerate(zip(names, Y))))
    (tmp_path / "sub.csv.progress.jsonl").write_text(json.dumps(
        {"run_key": {"models": [{"name": "final_111.pt", "bytes": 1, "mtime_ns": 1}]}}) + "\n")
    out = tmp_path / "eval"
    result = run_script(python, "evaluate.py", "--predictions", tmp_path / "sub.csv", "--labels",
                        tmp_path / "labels.csv", "--out-dir", out)
    html = (out / "report.html").read_text()
    assert "final_111.pt" in html and str(tmp_path / "sub.csv") in html and str(tmp_path / "labels.csv") in html
    metrics = json.loads((out / "metrics.json").read_text())
    for name in metrics:
        if name not in ("groups", "inputs", "notes"):
            assert METRIC_HELP[name] in html
    assert set(metrics["groups"]) == {"g1", "g2"} and "g1" in result.stdout


def test_help_shows_defaults(python):
    result = run_script(python, "evaluate.py", "--help")
    assert "(default: 5)" in result.stdout and "(default: 10)" in result.stdout


def test_equal_error_rate_by_hand():
    from inference.metrics import equal_error_rate

    assert equal_error_rate([0, 0, 1, 1], [0.1, 0.2, 0.8, 0.9]) == 0.0
    # reals 0.1, 0.6; fakes 0.4, 0.9: at any threshold in (0.4, 0.6) one real of two is called fake and one fake of
    # two is missed
    assert equal_error_rate([0, 0, 1, 1], [0.1, 0.6, 0.4, 0.9]) == pytest.approx(0.5)
    assert compute_metrics(Y, P)["eer"] == pytest.approx(0.25)  # threshold 0.65: v5 (real 0.7) above, v2 (0.2) below
