"""Two "machines" on one host: two torchrun agents meeting at a c10d rendezvous on 127.0.0.1, all on the CPU.

Each multi-machine path (training, sharded preprocessing, prediction) must give the same outputs as one machine.
One torch thread per process everywhere, so the same arithmetic runs in both set-ups.
"""
from __future__ import annotations

import csv
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from helpers import NAME, ONE_THREAD, REPO_ROOT, assert_same_outputs, run_script, save_release_checkpoint, trainer_args
from core.models import DeepFakeClassifier

pytestmark = pytest.mark.slow

TORCHRUN = [sys.executable, "-m", "torch.distributed.run"]
TIMING_COLUMNS = ("images_per_s", "data_wait")  # wall-clock measurements: the only columns allowed to differ


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def two_machines(tmp_path: Path, *command) -> str:
    """Run `command` under two torchrun agents (one process each) that meet at a c10d rendezvous on 127.0.0.1;
    returns their output. Like two hosts: no --node-rank, the rendezvous orders them."""
    launcher = [*TORCHRUN, "--nnodes", "2", "--nproc-per-node", "1", "--rdzv-backend", "c10d",
                "--rdzv-endpoint", f"127.0.0.1:{free_port()}", "--rdzv-id", "scale_check",
                "--local-addr", "127.0.0.1", *map(str, command)]
    env = ONE_THREAD
    logs = [tmp_path / f"agent{i}.log" for i in range(2)]
    agents = []
    for log in logs:
        with open(log, "w") as handle:  # files, not pipes: a full pipe would stall one agent and so both
            agents.append(subprocess.Popen(launcher, cwd=REPO_ROOT, env={**os.environ, **env},
                                           stdout=handle, stderr=subprocess.STDOUT))
    codes = [agent.wait(timeout=900) for agent in agents]
    output = "\n".join(f"--- agent {i}\n{log.read_text()}" for i, log in enumerate(logs))
    assert codes == [0, 0], output
    return output


def read_rows(path: Path) -> list[dict]:
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def test_training_on_two_machines_equals_two_processes_on_one(preprocessed_demo, tmp_path):
    one = tmp_path / "one_machine"
    run_script(*TORCHRUN, "--standalone", "--nproc-per-node", "2", *trainer_args(preprocessed_demo, one, 1),
               env=ONE_THREAD, timeout=600)
    two = tmp_path / "two_machines"
    output = two_machines(tmp_path, *trainer_args(preprocessed_demo, two, 1))
    assert "2 process(es) on cpu" in output

    single, split = (torch.load(run / "weights" / f"{NAME}_last", weights_only=True) for run in (one, two))
    assert single["state_dict"].keys() == split["state_dict"].keys()
    for key, value in single["state_dict"].items():
        assert torch.equal(value, split["state_dict"][key]), key
    for index, state in single["optimizer"]["state"].items():
        assert torch.equal(state["momentum_buffer"], split["optimizer"]["state"][index]["momentum_buffer"])
    assert single["step"] == split["step"] == 2
    metrics = [read_rows(run / "logs" / NAME / "metrics.csv") for run in (one, two)]
    for row in metrics:
        for column in TIMING_COLUMNS:
            row[0].pop(column)
    assert metrics[0] == metrics[1] and float(metrics[0][0]["balanced_loss"]) > 0


def test_preprocessing_on_two_machines_equals_one_run(demo_root, preprocessed_demo, tmp_path):
    """Each agent's RANK/WORLD_SIZE pick its shard (no --num-shards); folds.csv is written once, afterwards."""
    root = Path(shutil.copytree(demo_root, tmp_path / "data"))
    two_machines(tmp_path, "--no-python", "bash", "preprocess_data.sh", root, "--workers", "1")
    assert not (root / "folds.csv").exists()
    run_script(sys.executable, "-m", "preprocessing.generate_folds", "--root-dir", root)
    assert_same_outputs(root, preprocessed_demo)


def test_prediction_on_two_machines_equals_one_process(demo_root, tmp_path):
    torch.manual_seed(3)
    save_release_checkpoint(DeepFakeClassifier("efficientnet_lite0", pretrained=False), tmp_path / "model")
    videos = demo_root / "dfdc_train_part_0"
    common = ["predict_folder.py", "--weights-dir", tmp_path, "--models", "model", "--test-dir", videos,
              "--workers", "0", "--encoder", "efficientnet_lite0", "--size", "128", "--frames-per-video", "4"]
    run_script(sys.executable, *common, "--output", tmp_path / "one.csv", env=ONE_THREAD, timeout=600)
    output = two_machines(tmp_path, *common, "--output", tmp_path / "two.csv")
    assert "(2 rank(s))" in output
    for suffix in ("", ".errors.csv", ".crops.csv"):
        one, two = (read_rows(Path(f"{tmp_path / name}{suffix}")) for name in ("one.csv", "two.csv"))
        assert one == two, suffix
    assert len(read_rows(tmp_path / "one.csv")) == len(list(videos.glob("*.mp4")))
