"""The trainer as a user runs it: torchrun with 2 CPU processes, resume, config and weight errors, a demo training."""
from __future__ import annotations

import csv
import json
import shutil
import sys
from pathlib import Path

import pytest
import torch

from helpers import DEMO_CONFIG, NAME, ONE_THREAD, REPO_ROOT, TRAINER, run_script, torchrun, trainer_args
from training.pipelines.train_classifier import parse_args
from training.tools.config import ConfigError, load_config, rename_deprecated_keys

@pytest.mark.slow
def test_two_process_torchrun_writes_checkpoints_and_resumes(preprocessed_demo, tmp_path):
    output = torchrun(*trainer_args(preprocessed_demo, tmp_path, 2))
    assert "2 process(es) on cpu" in output
    assert "[val] epoch 0" in output and "[val] epoch 1" in output
    assert "fake_loss " in output and "real_loss " in output
    weights = tmp_path / "weights"
    assert {p.name for p in weights.iterdir()} == {f"{NAME}_0", f"{NAME}_1", f"{NAME}_last", f"{NAME}_best"}
    last = torch.load(weights / f"{NAME}_last", weights_only=True)
    assert last["epoch"] == 2 and last["step"] == 4 and last["scheduler"]["last_epoch"] == 4
    assert all(key.startswith("module.") for key in last["state_dict"])
    assert isinstance(last["bce_best"], float) and last["optimizer"]["state"]
    first = torch.load(weights / f"{NAME}_0", weights_only=True)
    assert first["epoch"] == 1 and first["step"] == 2

    # Continue from the epoch-0 checkpoint: only epoch 1 runs, from step 2 to 4.
    shutil.rmtree(tmp_path / "logs")
    resumed = tmp_path / "resumed"
    output = torchrun(*trainer_args(preprocessed_demo, resumed, 2, "--resume", weights / f"{NAME}_0"))
    assert "resumed from" in output and "epoch 1, step 2" in output
    assert "[val] epoch 1" in output and "[val] epoch 0" not in output
    after = torch.load(resumed / "weights" / f"{NAME}_last", weights_only=True)
    assert after["epoch"] == 2 and after["step"] == 4
    assert not (resumed / "weights" / f"{NAME}_0").exists()
    with open(resumed / "logs" / NAME / "metrics.csv") as handle:
        rows = list(csv.DictReader(handle))
    assert [row["epoch"] for row in rows] == ["1"] and float(rows[0]["balanced_loss"]) > 0


def write_config(tmp_path: Path, change) -> Path:
    config = json.loads(DEMO_CONFIG.read_text())
    change(config)
    path = tmp_path / "config.json"
    path.write_text(json.dumps(config))
    return path


def test_config_with_a_misspelt_key_fails_naming_it(tmp_path):
    path = write_config(tmp_path, lambda c: c["optimizer"].update(learning_rat=0.1))
    with pytest.raises(ConfigError, match=r"optimizer\.learning_rat"):
        load_config(path)
    with pytest.raises(ConfigError, match="batches_per_epok"):
        load_config(DEMO_CONFIG, ["batches_per_epok=3"])
    result = run_script(sys.executable, TRAINER, "--config", path, "--data-dir", tmp_path, check=False,
                        env=ONE_THREAD)
    assert result.returncode == 2 and "optimizer.learning_rat" in result.stderr


def test_configs_merge_defaults():
    b7 = load_config(REPO_ROOT / "configs" / "b7.json")
    assert b7["optimizer"]["clip"] == 1.0 and b7["optimizer"]["classifier_lr"] == -1 and b7["model_params"] == {}
    assert b7["schedule"]["params"] == {"max_iter": 100500, "power": 0.9}
    demo = load_config(DEMO_CONFIG, ["schedule.epochs=3", "optimizer.batch_size=4"])
    assert demo["schedule"]["params"]["max_iter"] == 3 * demo["batches_per_epoch"]
    assert demo["optimizer"]["batch_size"] == 4


def test_the_old_fp16_key_still_works_with_a_deprecation_message(tmp_path):
    def old_name(config):
        config["fp16"] = config.pop("mixed_precision")

    with pytest.warns(FutureWarning, match="'fp16' is deprecated.*rename it to 'mixed_precision'"):
        config = load_config(write_config(tmp_path, old_name))
    assert config["mixed_precision"] is False and "fp16" not in config
    with pytest.warns(FutureWarning, match="override 'fp16=true'"):
        assert load_config(DEMO_CONFIG, ["fp16=true"])["mixed_precision"] is True
    with pytest.raises(ConfigError, match="keep only 'mixed_precision'"):
        load_config(write_config(tmp_path, lambda c: c.update(fp16=True)))
    # what an older checkpoint recorded compares equal to the renamed config, without a message
    recorded = {"fp16": True, "size": 380}
    assert rename_deprecated_keys(recorded, "checkpoint", warn=False) == {"mixed_precision": True, "size": 380}


def test_the_old_test_every_spelling_still_works_with_a_deprecation_message(capsys):
    required = ["--config", "c.json", "--data-dir", "data"]
    assert parse_args([*required, "--test-every", "3"]).test_every == 3
    assert "deprecated" not in capsys.readouterr().err
    assert parse_args([*required, "--test_every", "4"]).test_every == 4
    assert "--test_every is deprecated and will be removed; use --test-every" in capsys.readouterr().err


@pytest.mark.slow
def test_pretrained_weights_offline_without_a_file_fail_fast(tmp_path):
    result = run_script(sys.executable, TRAINER, "--config", REPO_ROOT / "configs" / "b7.json", "--data-dir",
                        tmp_path, check=False, env=ONE_THREAD, timeout=120)
    assert result.returncode == 2
    assert "--pretrained-file" in result.stderr and "--no-pretrained" in result.stderr
    missing = tmp_path / "nowhere.pth"
    result = run_script(sys.executable, TRAINER, "--config", REPO_ROOT / "configs" / "b7.json", "--data-dir",
                        tmp_path, "--pretrained-file", missing, check=False, env=ONE_THREAD, timeout=120)
    assert result.returncode == 2 and str(missing) in result.stderr


@pytest.mark.slow
def test_short_cpu_training_learns_the_demo(tmp_path_factory, tmp_path):
    """The real demo generator (small), preprocessing, and a few epochs of the demo config."""
    from demo.make_demo_dataset import make_demo_dataset

    root = make_demo_dataset(tmp_path_factory.mktemp("demo_learn"), seed=1, parts=(0, 3), reals_per_part=6,
                             frames=60, pairs_per_part=0)
    run_script("bash", "preprocess_data.sh", root, "--workers", "2", timeout=900)
    # 108 train crops (54 per class per epoch), 18 holdout videos: 9 steps of 8 per epoch, 90 steps in all.
    run_script(sys.executable, TRAINER, "--config", DEMO_CONFIG, "--data-dir", root, "--output-dir",
               tmp_path / "weights", "--logdir", tmp_path / "logs", "--prefix", "t_", "--workers", "1",
               "--epochs", "10", "--override", "optimizer.batch_size=8", "--override", "optimizer.learning_rate=0.03",
               env={"OMP_NUM_THREADS": "2", "HF_HUB_OFFLINE": "1"}, timeout=900)
    with open(tmp_path / "logs" / NAME / "metrics.csv") as handle:
        rows = list(csv.DictReader(handle))
    losses = [float(row["balanced_loss"]) for row in rows]
    assert losses[-1] < 0.55 and losses[-1] < losses[0] - 0.1, losses
    assert float(rows[-1]["auc"]) > 0.8, rows[-1]


def test_mixed_precision_uses_bf16_only_where_the_gpu_has_it(monkeypatch):
    from training.pipelines.train_classifier import Precision

    cuda = torch.device("cuda", 0)
    # A pre-Ampere GPU (Titan V, V100): bf16 only emulated, so fp16 + GradScaler.
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda including_emulation=True: including_emulation)
    assert Precision.choose(cuda, mixed=True).dtype == torch.float16 and Precision.choose(cuda, True).uses_scaler
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda including_emulation=True: True)
    assert Precision.choose(cuda, mixed=True).dtype == torch.bfloat16
    assert Precision.choose(cuda, mixed=False).dtype is None
    assert Precision.choose(torch.device("cpu"), mixed=True).dtype is None


def test_plot_loss_selects_epochs_from_a_trainer_log(tmp_path):
    lines = []
    for epoch in range(20):
        fake, real = 1.0 - 0.02 * epoch, 0.5 - 0.01 * epoch
        if epoch == 18:
            fake = 2.0  # a bad epoch is never selected
        lines += [f"epoch {epoch}: 100%|#####| 2/2 [00:01<00:00]", f"[val] epoch {epoch}", f"fake_loss {fake:.6f}",
                  f"real_loss {real:.6f}", "balanced_loss 0.5 auc 0.9"]
    log = tmp_path / "b7_111"
    log.write_text("\n".join(lines) + "\n")
    result = run_script(sys.executable, "plot_loss.py", "--log-file", log)
    assert "selected epochs (lowest 5 weighted, then > 16): [19, 17]" in result.stdout
    assert "last epoch 19: the _last checkpoint" in result.stdout
    assert (tmp_path / "b7_111_loss.png").stat().st_size > 1000
    original_format = tmp_path / "original.log"
    original_format.write_text("fake_loss 0.5\nreal_loss 0.3\nfake_loss 0.4\nreal_loss 0.2\n")
    result = run_script(sys.executable, "plot_loss.py", "--log-file", original_format, "--min-epoch", "-1",
                        "--out", tmp_path / "plot.png")
    assert "[1, 0]" in result.stdout and (tmp_path / "plot.png").is_file()


@pytest.mark.parametrize("args", [[], ["DATA"], ["", "2"], ["DATA", "two"], ["DATA", "0"], ["missing_dir", "2"]])
def test_train_sh_rejects_bad_arguments(tmp_path, args):
    args = [str(tmp_path) if a == "DATA" else a for a in args]
    result = run_script("bash", "train.sh", *args, check=False)
    assert result.returncode == 2 and "usage: train.sh DATA_ROOT NUM_GPUS" in result.stderr


def test_train_sh_runs_the_five_seeds_with_torchrun(tmp_path):
    result = run_script("bash", "train.sh", tmp_path, "4", "--workers", "2", env={"DRY_RUN": "1"})
    commands = result.stdout.strip().splitlines()
    assert len(commands) == 5
    for seed, command in zip((111, 555, 777, 888, 999), commands):
        assert "-m torch.distributed.run --standalone --nproc_per_node 4" in command
        assert f"--seed {seed} " in command and f"--prefix b7_{seed}_ " in command
        assert "--config configs/b7.json" in command and "--fold 0" in command and f"--data-dir {tmp_path}" in command
        assert command.endswith(f"--resume last --workers 2 >> logs/b7_{seed} 2>&1")
    result = run_script("bash", "train.sh", tmp_path, "8", env={"DRY_RUN": "1", "NNODES": "2",
                                                                 "RDZV_ENDPOINT": "node0:29400"})
    assert "--nnodes 2 --rdzv-backend c10d --rdzv-endpoint node0:29400 --rdzv-id b7_111" in result.stdout


@pytest.mark.slow
@pytest.mark.parametrize("case", ["missing folds.csv", "misspelt config key"])
def test_train_sh_reports_an_error_no_rerun_fixes_once_and_stops(tmp_path, case):
    data = tmp_path / "data"
    data.mkdir()
    if case == "missing folds.csv":
        config, expected = DEMO_CONFIG, str(data / "folds.csv")
    else:
        config, expected = write_config(tmp_path, lambda c: c["optimizer"].update(learning_rat=0.1)), "learning_rat"
    logs = tmp_path / "logs"
    result = run_script("bash", "train.sh", data, "1", "--output-dir", tmp_path / "weights", "--logdir",
                        tmp_path / "runs", "--workers", "0", check=False, timeout=600,
                        env={**ONE_THREAD, "CONFIG": str(config), "LOG_DIR": str(logs)})
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) <= 3, result.stderr  # the seed's header, the error, where to look
    errors = [line for line in lines if line.startswith("train_classifier: error:")]
    assert len(errors) == 1 and expected in errors[0], result.stderr
    assert "seeds not started: 555 777 888 999" in result.stderr and "resume" not in result.stderr
    [log] = logs.iterdir()  # only the first seed ran
    assert log.name == f"{config.stem}_111" and expected in log.read_text()
