"""Aligned-pair mixup on the preprocessed demo: the blend, its target, the refusals, torchrun and resume."""
from __future__ import annotations

import json

import cv2
import numpy as np
import pytest
import torch
from helpers import run_script
from helpers import NAME, torchrun, trainer_args

from training.datasets.classifier_dataset import (
    DatasetOptions,
    DeepFakeClassifierDataset,
    read_folds,
    select_rows,
)
from training.tools.config import ConfigError, load_config

DEMO_CONFIG = "configs/demo_cpu.json"
MIXUP = 'pair_mixup={"alpha": 0.5, "p": 0.5}'


def untouched(image, mask):
    return {"image": image, "mask": mask}


def read_rgb(path):
    return cv2.cvtColor(cv2.imread(str(path), cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB).astype(np.float64)


@pytest.mark.parametrize("smoothing", [0.0, 0.01])
def test_a_mixed_sample_is_the_blend_of_the_aligned_pair(preprocessed_demo, smoothing):
    rows = select_rows(read_folds(preprocessed_demo / "folds.csv"), 0, "train")
    options = DatasetOptions(data_root=preprocessed_demo, hardcore=False, label_smoothing=smoothing,
                             normalize_mean=(0, 0, 0), normalize_std=(1, 1, 1),
                             pair_mixup={"alpha": 0.5, "p": 1.0})
    dataset = DeepFakeClassifierDataset(rows, "train", options, untouched, seed=3)
    dataset.reset(0, 3)
    mixed = 0
    for index, row in enumerate(dataset.rows):
        sample = dataset[index]
        weight = sample["mix_lambda"]
        if row.label == 0:
            assert weight == -1.0 and sample["labels"].item() == pytest.approx(smoothing)
            continue
        original = preprocessed_demo / "crops" / row.original / row.file
        if not original.is_file():
            assert weight == -1.0
            continue
        assert 0 < weight < 1
        fake, real = read_rgb(preprocessed_demo / "crops" / row.video / row.file), read_rgb(original)
        expected = weight * fake + (1 - weight) * real
        image = sample["image"].numpy().transpose(1, 2, 0) * 255
        assert np.abs(image - expected).max() <= 0.5 + 1e-3  # rounded to whole grey levels once
        if 0.1 < weight < 0.9 and np.abs(fake - real).max() > 20:
            assert np.abs(image - fake).max() > 1 and np.abs(image - real).max() > 1  # really blended
        target = weight * (1 - smoothing) + (1 - weight) * smoothing
        assert sample["labels"].item() == pytest.approx(target, abs=1e-6)
        if smoothing == 0:
            assert sample["labels"].item() == pytest.approx(weight, abs=1e-6)
        mixed += 1
    assert mixed >= 5


def test_without_the_key_nothing_changes(preprocessed_demo):
    """The default path: the same samples as before, and no mix_lambda field."""
    rows = select_rows(read_folds(preprocessed_demo / "folds.csv"), 0, "train")
    plain = DeepFakeClassifierDataset(rows, "train", DatasetOptions(data_root=preprocessed_demo), untouched, seed=5)
    plain.reset(0, 5)
    sample = plain[0]
    assert "mix_lambda" not in sample


def write_config(tmp_path, **changes):
    with open(DEMO_CONFIG) as handle:
        config = json.load(handle)
    config.update(changes)
    path = tmp_path / "config.json"
    path.write_text(json.dumps(config))
    return path


@pytest.mark.parametrize("value, named", [({"alpha": 0.5}, "must be null or an object"),
                                          ({"alpha": 0, "p": 0.5}, "alpha > 0"),
                                          ({"alpha": 0.5, "p": 1.5}, "0 < p <= 1")])
def test_malformed_settings_are_refused(tmp_path, value, named):
    with pytest.raises(ConfigError, match="pair_mixup") as caught:
        load_config(write_config(tmp_path, pair_mixup=value))
    assert named in str(caught.value)


def test_refused_with_self_blended_fakes(tmp_path):
    with pytest.raises(ConfigError, match="no such pairs"):
        load_config(write_config(tmp_path, pair_mixup={"alpha": 0.5, "p": 0.5}, fakes="sbi"))


@pytest.mark.slow
def test_refused_before_any_work_on_a_root_without_originals(preprocessed_demo, tmp_path, python):
    folds = read_folds(preprocessed_demo / "folds.csv")
    only_fakes = tmp_path / "folds_fakes.csv"
    folds[folds["label"] == 1].to_csv(only_fakes, index=False)
    result = run_script(python, *trainer_args(preprocessed_demo, tmp_path, 1, "--folds-csv", only_fakes,
                                              "--override", MIXUP), check=False)
    assert result.returncode == 2
    assert "pair_mixup" in result.stderr and str(only_fakes) in result.stderr
    assert "originals are missing" in result.stderr
    assert not (tmp_path / "weights").exists()


@pytest.mark.slow
def test_two_process_torchrun_trains_with_pair_mixup_and_resumes(preprocessed_demo, tmp_path):
    output = torchrun(*trainer_args(preprocessed_demo, tmp_path, 2, "--override", MIXUP))
    assert "2 process(es) on cpu" in output and "[val] epoch 1" in output
    weights = tmp_path / "weights"
    assert torch.load(weights / f"{NAME}_last", weights_only=True)["step"] == 4

    resumed = tmp_path / "resumed"
    output = torchrun(*trainer_args(preprocessed_demo, resumed, 2, "--override", MIXUP,
                                    "--resume", weights / f"{NAME}_0"))
    assert "epoch 1, step 2" in output and "[val] epoch 0" not in output
    after = torch.load(resumed / "weights" / f"{NAME}_last", weights_only=True)
    assert after["epoch"] == 2 and after["step"] == 4
