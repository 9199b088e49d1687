"""The speed-related paths: the allocator setting, one half-size frame for steps and prediction, no stray workers,
and the CPU precision paths of prediction. Speed itself is measured by bench/, never asserted here."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from helpers import REPO_ROOT
import kernel_utils as ku
from core import faces
from core.allocator import OPT_OUT, TUNABLES, allocator_needs_setting, steady_environment
from core.card import ModelCard
from core.layout import load_dataset
from core.models import DeepFakeClassifier
from inference.pipeline import PredictionConfig, prepare_video
from preprocessing import detect_original_faces

REPORT_ENVIRONMENT = ("from core.allocator import use_steady_allocator; use_steady_allocator('__main__'); "
                      "import os, subprocess; print(os.getpid()); "
                      "print('GLIBC_TUNABLES=' + os.environ.get('GLIBC_TUNABLES', '')); "
                      "print(subprocess.run(['/lib64/ld-linux-x86-64.so.2', '--list-tunables'], capture_output=True, "
                      "text=True).stdout)")


def run_python(code: str, env: dict) -> list[str]:
    process = subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT, env=env, capture_output=True, text=True,
                             timeout=120, check=True)
    return process.stdout.splitlines()


def clean_env(**extra: str) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("GLIBC_TUNABLES", OPT_OUT, "LD_PRELOAD")}
    return {**env, **extra}


@pytest.mark.skipif(not Path("/lib64/ld-linux-x86-64.so.2").exists(), reason="needs x86-64 glibc")
def test_an_entry_point_restarts_itself_once_with_the_allocator_setting():
    lines = run_python(REPORT_ENVIRONMENT, clean_env())
    assert lines.count(f"GLIBC_TUNABLES={TUNABLES}") == 1
    assert "glibc.malloc.trim_threshold: 0x1000000000 (min: 0x0, max: 0xffffffffffffffff)" in lines  # glibc reads it
    assert sum(line.isdigit() for line in lines) == 1  # re-executed in place: one process printed, once


def test_the_allocator_setting_keeps_other_tunables_and_can_be_refused():
    assert steady_environment({"GLIBC_TUNABLES": "glibc.pthread.rseq=0"})["GLIBC_TUNABLES"] == \
        f"glibc.pthread.rseq=0:{TUNABLES}"
    assert not allocator_needs_setting({OPT_OUT: "1"})
    assert not allocator_needs_setting({"LD_PRELOAD": "/usr/lib/x86_64-linux-gnu/libjemalloc.so.2"})
    assert not allocator_needs_setting({"GLIBC_TUNABLES": TUNABLES})
    lines = run_python(REPORT_ENVIRONMENT, clean_env(**{OPT_OUT: "1"}))
    assert "GLIBC_TUNABLES=" in lines


def test_steps_and_prediction_detect_on_the_same_half_size_pixels(demo_root):
    """Step 1 (iter_frames(half=True) in its decoding worker) and prediction (half_size of the sampled frames)
    give bit-identical detector frames, so MTCNN gives them identical boxes."""
    real = next(e for e in load_dataset(demo_root).values() if not e.is_fake)
    step1 = detect_original_faces.decode_for_detection((real, 1, False))
    # every frame: the same frames on both sides
    card = ModelCard(encoder="efficientnet_lite0", input_size=224, frames_per_video=len(step1.indices))
    predicted = prepare_video(real.path, PredictionConfig(card=card, detect_in_workers=False))
    prediction_half = predicted.half_frames.numpy()
    assert predicted.frames.indices == step1.indices
    assert prediction_half.dtype == step1.frames.dtype == np.uint8
    assert np.array_equal(prediction_half, step1.frames)

    mtcnn = faces.make_mtcnn(faces.DETECT_THRESHOLDS)
    picked = [0, len(step1.indices) // 2, len(step1.indices) - 1]
    step1_boxes = faces.detect_batch(mtcnn, [step1.frames[i] for i in picked])
    prediction_boxes = ku.detect_faces(mtcnn, [prediction_half[i] for i in picked], frames_per_call=len(picked))
    assert all(b is not None for b in step1_boxes)
    for ours, theirs in zip(step1_boxes, prediction_boxes):
        assert np.array_equal(ours, theirs)


def processes_in_group(group: int) -> list[str]:
    """'pid state command' of every process whose process group is `group` (Linux /proc)."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
            command = (stat.parent / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue  # exited while we looked
        state, _parent, process_group = text[text.rindex(")") + 2:].split()[:3]
        if int(process_group) == group:
            found.append(f"{stat.parent.name} {state} {command[:120]}")
    return found


@pytest.mark.parametrize("step", ["detect_original_faces", "extract_crops"])
def test_a_step_leaves_no_process_of_its_group_behind(demo_root, tmp_path, step):
    root = tmp_path / "data"
    shutil.copytree(demo_root, root)
    steps = ["detect_original_faces"] + (["extract_crops"] if step == "extract_crops" else [])
    for name in steps:
        process = subprocess.Popen([sys.executable, "-m", f"preprocessing.{name}", "--root-dir", str(root),
                                    "--workers", "2"], cwd=REPO_ROOT, env=clean_env(), start_new_session=True,
                                   stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        seen_workers = set()
        while process.poll() is None:  # watch the pool exist, so the test cannot pass without one
            seen_workers.update(pid for pid in (line.split()[0] for line in processes_in_group(process.pid))
                                if pid != str(process.pid))  # forked or spawned workers
            time.sleep(0.2)
        stderr = process.stderr.read()
        process.stderr.close()
        assert process.returncode == 0, stderr
        assert processes_in_group(process.pid) == [], f"{name} left processes behind"
    assert len(seen_workers) >= 2, f"{step} ran without a worker pool: {seen_workers}"


def test_bf16_on_cpu_stays_close_to_fp32_and_fp32_is_unchanged_by_channels_last():
    torch.manual_seed(0)
    model = DeepFakeClassifier("efficientnet_lite0", pretrained=False).eval()
    rng = np.random.default_rng(0)
    crops = rng.integers(0, 256, (6, 224, 224, 3), dtype=np.uint8)
    card = ModelCard(encoder="efficientnet_lite0", input_size=224)
    plain = ku.predict_probabilities([model], crops, torch.device("cpu"), torch.float32, 4, card)
    fast = ku.inference_model(model)
    fp32 = ku.predict_probabilities([fast], crops, torch.device("cpu"), torch.float32, 4, card)
    bf16 = ku.predict_probabilities([ku.inference_model(model.to(torch.bfloat16))], crops, torch.device("cpu"),
                                    torch.bfloat16, 4, card)
    assert np.abs(fp32 - plain).max() < 1e-5
    assert np.abs(bf16 - fp32).max() < 0.03
    assert np.abs(bf16 - fp32).max() > 0  # really computed in bf16


def test_the_image_sets_the_same_allocator_setting():
    assert f"GLIBC_TUNABLES={TUNABLES}\n" in (REPO_ROOT / "Dockerfile").read_text()


def test_compile_is_refused_before_any_work_without_a_compiler(monkeypatch, tmp_path, capsys):
    import predict_folder

    monkeypatch.setenv("CXX", "no-such-compiler")
    with pytest.raises(SystemExit):
        predict_folder.parse_args(["--models", "m.pth", "--test-dir", str(tmp_path), "--compile"])
    assert "--compile: torch.compile needs a C/C++ compiler" in capsys.readouterr().err


@pytest.mark.slow
def test_compiled_classifier_gives_the_eager_scores():
    torch.manual_seed(0)
    model = DeepFakeClassifier("efficientnet_lite0", pretrained=False).eval()
    crops = np.random.default_rng(1).integers(0, 256, (3, 64, 64, 3), dtype=np.uint8)
    card = ModelCard(encoder="efficientnet_lite0", input_size=64)
    eager = ku.predict_probabilities([ku.inference_model(model)], crops, torch.device("cpu"), torch.float32, 3, card)
    compiled = ku.predict_probabilities([ku.inference_model(model, compile_model=True)], crops, torch.device("cpu"),
                                        torch.float32, 3, card)  # one batch shape: one compile (~1 min on 2 cores)
    assert np.abs(compiled - eager).max() < 1e-5
