"""The trainer's "unchanged_tracks" option: labels of the people a fake video left untouched."""
from __future__ import annotations

import pandas as pd
import pytest

from core.changes import changed_tracks
from training.datasets.classifier_dataset import read_folds
from training.datasets.unchanged_tracks import TracksMissing, apply_unchanged_tracks, check_folds_have_tracks

COLUMNS = ["video", "file", "label", "original", "frame", "fold", "track", "changed"]


def folds_with_tracks(path):
    rows = [["real", "0_0.png", 0, "real", 0, 1, 0, ""], ["real", "0_1.png", 0, "real", 0, 1, 1, ""],
            ["fake", "0_0.png", 1, "real", 0, 1, 0, 1], ["fake", "0_1.png", 1, "real", 0, 1, 1, 0]]
    pd.DataFrame(rows, columns=COLUMNS).to_csv(path, index=False)
    return path


def test_the_three_choices(tmp_path):
    folds = read_folds(folds_with_tracks(tmp_path / "folds.csv"))
    assert apply_unchanged_tracks(folds, "fake")["label"].tolist() == [0, 0, 1, 1]
    assert apply_unchanged_tracks(folds, "real")["label"].tolist() == [0, 0, 1, 0]
    assert apply_unchanged_tracks(folds, "drop")["file"].tolist() == ["0_0.png", "0_1.png", "0_0.png"]
    check_folds_have_tracks(tmp_path / "folds.csv", "real")  # has them: no error


def test_folds_without_tracks_are_refused_for_real_and_drop_only(tmp_path):
    old = tmp_path / "old.csv"
    pd.DataFrame([["a", "0_0.png", 1, "b", 0, 1]], columns=COLUMNS[:6]).to_csv(old, index=False)
    empty = tmp_path / "empty.csv"
    pd.DataFrame([["a", "0_0.png", 1, "b", 0, 1, "", ""]], columns=COLUMNS).to_csv(empty, index=False)
    check_folds_have_tracks(old, "fake")
    for path in (old, empty):
        for option in ("real", "drop"):
            with pytest.raises(TracksMissing, match=f"{path}.*made without face tracks"):
                check_folds_have_tracks(path, option)


def test_the_trainer_refuses_before_building_anything(tmp_path, capsys):
    from training.pipelines.train_classifier import main

    pd.DataFrame([["a", "0_0.png", 1, "b", 0, 1]], columns=COLUMNS[:6]).to_csv(tmp_path / "folds.csv", index=False)
    code = main(["--config", "configs/demo_cpu.json", "--data-dir", str(tmp_path), "--output-dir",
                 str(tmp_path / "weights/"), "--logdir", str(tmp_path / "logs"), "--override",
                 "unchanged_tracks=drop"])
    assert code != 0 and "made without face tracks" in capsys.readouterr().err
    assert not (tmp_path / "weights").exists() and not (tmp_path / "logs").exists()


def test_changed_rule_is_relative_to_the_most_changed_person():
    assert changed_tracks({0: 0.30, 1: 0.08}) == {0: True, 1: False}
    assert changed_tracks({0: 0.30, 1: 0.20}) == {0: True, 1: True}  # both swapped
    assert changed_tracks({0: 0.05}) == {0: True}  # one person: changed, as the original labels
    assert changed_tracks({}) == {}
