"""Resuming the trainer: an interrupted and resumed run is the uninterrupted run; a changed config is refused."""
from __future__ import annotations

import csv
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from helpers import REPO_ROOT, run_script

TRAINER = "training/pipelines/train_classifier.py"
NAME = "r_DeepFakeClassifier_efficientnet_lite0_0"
EPOCHS = 4
ENV = {"OMP_NUM_THREADS": "1", "OMP_WAIT_POLICY": "PASSIVE", "HF_HUB_OFFLINE": "1"}
# Columns that are a function of the data, the weights and the random states (not of the machine's speed).
RESULT_COLUMNS = ("epoch", "train_loss", "lr", "replaced_crops", "fake_loss", "real_loss", "balanced_loss", "auc")


def trainer_command(data_dir: Path, out: Path, *extra: str) -> list[str]:
    # One DataLoader worker, so that the workers' seeds are part of what has to be replayed.
    return [sys.executable, TRAINER, "--config", str(REPO_ROOT / "configs" / "demo_cpu.json"), "--data-dir",
            str(data_dir), "--output-dir", str(out / "weights"), "--logdir", str(out / "logs"), "--prefix", "r_",
            "--seed", "5", "--workers", "1", "--device", "cpu", "--epochs", str(EPOCHS), "--batches-per-epoch", "2",
            "--override", "optimizer.batch_size=4", "--override", "size=64", *extra]


def result_rows(out: Path) -> list[dict]:
    with open(out / "logs" / NAME / "metrics.csv", newline="") as handle:
        return [{key: row[key] for key in RESULT_COLUMNS} for row in csv.DictReader(handle)]


def final_weights(out: Path) -> dict:
    return torch.load(out / "weights" / f"{NAME}_last", weights_only=True)["state_dict"]


def interrupt_after_first_epoch(command: list[str], last_checkpoint: Path) -> subprocess.CompletedProcess:
    """Start the trainer and press Ctrl-C (SIGINT) as soon as its first _last checkpoint appears.

    Like a user, press it again while the trainer keeps running: Python drops a KeyboardInterrupt that lands
    inside an at-fork handler (a DataLoader worker starting), so one press is not always enough.
    """
    process = subprocess.Popen(command, cwd=REPO_ROOT, env={**os.environ, **ENV},
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    deadline = time.monotonic() + 600
    while not last_checkpoint.exists() and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    still_running = process.poll() is None
    for _ in range(60):  # soon enough that a lost press cannot let the last epochs finish
        if process.poll() is not None:
            break
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=0.5)
        except subprocess.TimeoutExpired:
            pass
    output, _ = process.communicate(timeout=120)
    assert still_running, f"the trainer ended before it could be interrupted:\n{output}"
    return subprocess.CompletedProcess(command, process.returncode, output, "")


@pytest.mark.slow
def test_interrupted_and_resumed_run_equals_the_uninterrupted_run(preprocessed_demo, tmp_path):
    straight, interrupted = tmp_path / "straight", tmp_path / "interrupted"
    run_script(*trainer_command(preprocessed_demo, straight), env=ENV, timeout=600)

    stopped = interrupt_after_first_epoch(trainer_command(preprocessed_demo, interrupted),
                                          interrupted / "weights" / f"{NAME}_last")
    assert stopped.returncode != 0, stopped.stdout
    stopped_at = torch.load(interrupted / "weights" / f"{NAME}_last", weights_only=True)["epoch"]
    assert 1 <= stopped_at < EPOCHS, "the interruption came after the last epoch: nothing would be resumed"

    resumed = run_script(*trainer_command(preprocessed_demo, interrupted, "--resume", "last"), env=ENV, timeout=600)
    assert f"epoch {stopped_at}, step {2 * stopped_at}" in resumed.stdout + resumed.stderr

    assert result_rows(interrupted) == result_rows(straight)
    assert len(result_rows(straight)) == EPOCHS
    expected, got = final_weights(straight), final_weights(interrupted)
    assert expected.keys() == got.keys()
    different = [key for key in expected if not torch.equal(expected[key], got[key])]
    assert not different, f"{len(different)} tensors differ after the resume, e.g. {different[:3]}"


@pytest.mark.slow
def test_resume_with_more_epochs_or_another_config_is_refused(preprocessed_demo, tmp_path):
    command = trainer_command(preprocessed_demo, tmp_path)
    run_script(*command[:command.index("--epochs") + 1], "1", *command[command.index("--epochs") + 2:], env=ENV,
               timeout=600)
    last = tmp_path / "weights" / f"{NAME}_last"
    before = last.read_bytes()
    for change, key in ((["--epochs", "3"], "schedule.epochs"),
                        (["--override", "optimizer.learning_rate=0.1"], "optimizer.learning_rate"),
                        (["--seed", "6"], "options.seed")):
        longer = [*command[:command.index("--epochs")], *command[command.index("--epochs") + 2:], *change]
        if change[0] != "--epochs":
            longer += ["--epochs", "1"]
        result = run_script(*longer, "--resume", "last", env=ENV, check=False, timeout=600)
        assert result.returncode == 2, result.stdout + result.stderr
        errors = [line for line in result.stderr.splitlines() if line.startswith("train_classifier: error:")]
        assert len(errors) == 1 and key in errors[0], result.stderr
        assert "Traceback" not in result.stderr
    assert last.read_bytes() == before, "a refused resume must not touch the checkpoint"
