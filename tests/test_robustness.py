"""Perturbed copies (core/perturb.py) and bench/robustness.py on small generated videos with a real model."""
from __future__ import annotations

import csv
import json

import av
import cv2
import numpy as np
import pytest
import torch
from helpers import run_script
from helpers import (
    HEIGHT,
    WIDTH,
    face_frames,
    gradient_frames,
    write_video,
)

from core.card import ModelCard
from core.models import DeepFakeClassifier
from core.perturb import PerturbationError, parse_spec, write_perturbed
from core.video import iter_frames

FPS = 20
FRAMES = 40  # 2 s


@pytest.fixture(scope="module")
def source(tmp_path_factory):
    return write_video(tmp_path_factory.mktemp("perturb") / "face.mp4", face_frames(FRAMES), fps=FPS)


def copy_of(source, spec, tmp_path):
    target = tmp_path / f"{parse_spec(spec).slug}.mp4"
    write_perturbed(source, target, parse_spec(spec))
    return target


def stream_facts(path):
    """(width, height, decoded frames, average rate, duration in s, has audio)."""
    frames = [image for _index, image in iter_frames(path)]
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        return (frames[0].shape[1], frames[0].shape[0], len(frames), float(stream.average_rate),
                container.duration / 1e6, bool(container.streams.audio))


def first_frame(path):
    return next(iter(iter_frames(path)))[1].astype(np.float32)


def sharpness(image):
    return float(cv2.Laplacian(cv2.cvtColor(image.astype(np.uint8), cv2.COLOR_RGB2GRAY), cv2.CV_64F).var())


def test_crf_keeps_geometry_and_timing_and_lowers_the_bitrate(source, tmp_path):
    sizes = []
    for crf in (17, 30, 40):
        copy = copy_of(source, f"crf:{crf}", tmp_path)
        assert stream_facts(copy)[:4] == (WIDTH, HEIGHT, FRAMES, FPS)
        sizes.append(copy.stat().st_size)
    assert sizes[0] > sizes[1] > sizes[2]


def test_scale_goes_down_and_back_up(source, tmp_path):
    reference = copy_of(source, "crf:17", tmp_path)  # the same encode without the resize
    for factor in (0.5, 0.25):
        copy = copy_of(source, f"scale:{factor}", tmp_path)
        assert stream_facts(copy)[:3] == (WIDTH, HEIGHT, FRAMES)
        assert sharpness(first_frame(copy)) < 0.5 * sharpness(first_frame(reference))


def test_height_and_messenger_change_the_resolution(source, tmp_path):
    width, height, frames, *_ = stream_facts(copy_of(source, "height:180", tmp_path))
    assert (width, height, frames) == (240, 180, FRAMES)
    # messenger: 480 lines at most (this video has 360, so it keeps them), 15 fps at most, CRF 32
    width, height, frames, rate, duration, audio = stream_facts(copy_of(source, "messenger", tmp_path))
    assert (width, height) == (WIDTH, HEIGHT)
    assert frames == 30 and rate == pytest.approx(15, abs=0.3) and duration == pytest.approx(2, abs=0.1)
    assert not audio


def test_fps_drops_frames_and_keeps_the_timing(source, tmp_path):
    width, height, frames, rate, duration, _ = stream_facts(copy_of(source, "fps:0.5", tmp_path))
    assert (width, height, frames) == (WIDTH, HEIGHT, FRAMES // 2)
    assert rate == pytest.approx(FPS / 2, abs=0.1)
    assert duration == pytest.approx(FRAMES / FPS, abs=0.1)  # the same 2 s: frames shown when they were


def test_blur_and_noise_change_the_pixels(source, tmp_path):
    reference = first_frame(copy_of(source, "crf:17", tmp_path))
    blurred = first_frame(copy_of(source, "blur:2", tmp_path))
    noisy = first_frame(copy_of(source, "noise:10", tmp_path))
    assert sharpness(blurred) < 0.3 * sharpness(reference)
    flat = reference[:10, :30]  # the grey background: noise shows as spread
    assert noisy[:10, :30].std() > flat.std() + 4
    composed = copy_of(source, "scale:0.5+crf:35", tmp_path)
    assert stream_facts(composed)[:3] == (WIDTH, HEIGHT, FRAMES)


@pytest.mark.parametrize("spec, named", [("jpeg:50", "jpeg:50"), ("crf:70", "0 to 51"), ("scale:2", "(0, 1]"),
                                         ("crf:x", "'x'"), ("none+crf:30", "stands alone"),
                                         ("crf:23+crf:30", "one crf")])
def test_bad_specs_are_refused(spec, named):
    with pytest.raises(PerturbationError, match=spec.replace("+", r"\+")) as caught:
        parse_spec(spec)
    assert named in str(caught.value)


# ---------------------------------------------------------------- bench/robustness.py

@pytest.fixture(scope="module")
def labelled(tmp_path_factory):
    """Four face videos (two labelled FAKE) and a small model whose card says how to score them."""
    root = tmp_path_factory.mktemp("robust")
    videos = root / "videos"
    videos.mkdir()
    frames = face_frames(24)
    labels = [("a.mp4", "REAL"), ("b.mp4", "FAKE"), ("c.mp4", "REAL"), ("d.mp4", "FAKE")]
    for i, (name, _label) in enumerate(labels):
        shifted = [np.roll(f, 7 * i, axis=1) for f in frames[i:i + 20]]
        write_video(videos / name, shifted, fps=FPS)
    with open(root / "labels.csv", "w", newline="") as handle:
        csv.writer(handle).writerows([("filename", "label"), *labels])
    torch.manual_seed(0)
    model = DeepFakeClassifier("efficientnet_lite0", pretrained=False)
    card = ModelCard(encoder="efficientnet_lite0", input_size=96, frames_per_video=3)
    (root / "weights").mkdir()
    torch.save({"epoch": 1, "state_dict": model.state_dict(), "card": card.to_dict()}, root / "weights" / "tiny")
    return root


def robustness(root, work, *specs, python):
    return run_script(python, "bench/robustness.py", "--weights-dir", root / "weights", "--models", "tiny",
                      "--test-dir", root / "videos", "--labels", root / "labels.csv", "--work-dir", work,
                      "--workers", "0", "--perturbations", *specs, check=False)


def test_unknown_spec_is_refused_before_any_work(labelled, python, tmp_path):
    result = robustness(labelled, tmp_path / "out", "none", "crf:30", "sharpen:2", python=python)
    assert result.returncode == 2
    assert "sharpen:2" in result.stderr and "unknown perturbation" in result.stderr
    assert not (tmp_path / "out").exists()


@pytest.mark.slow
def test_none_gives_the_clean_scores_and_a_rerun_resumes(labelled, python, tmp_path):
    work = tmp_path / "out"
    result = robustness(labelled, work, "none", "crf:38", python=python)
    assert result.returncode == 0, result.stderr
    with open(work / "robustness.csv", newline="") as handle:
        rows = {r["perturbation"]: r for r in csv.DictReader(handle)}
    assert set(rows) == {"none", "crf:38"}
    assert rows["none"]["videos"] == rows["none"]["scored"] == "4"
    assert float(rows["none"]["d_auc"]) == 0 and rows["crf:38"]["d_log_loss"] != ""
    assert (work / "robustness.png").stat().st_size > 0

    clean = tmp_path / "clean.csv"  # predict_folder.py and evaluate.py as a user runs them
    run_script(python, "predict_folder.py", "--weights-dir", labelled / "weights", "--models", "tiny",
               "--test-dir", labelled / "videos", "--output", clean, "--workers", "0")
    run_script(python, "evaluate.py", "--predictions", clean, "--labels", labelled / "labels.csv",
               "--out-dir", tmp_path / "eval")
    metrics = json.loads((tmp_path / "eval" / "metrics.json").read_text())
    assert float(rows["none"]["auc"]) == pytest.approx(metrics["roc_auc"], abs=1e-6)
    assert float(rows["none"]["log_loss"]) == pytest.approx(metrics["log_loss"], abs=1e-6)
    assert float(rows["none"]["balanced_log_loss"]) == pytest.approx(metrics["balanced_log_loss"], abs=1e-6)

    copies = sorted((work / "videos" / "crf-38").glob("*.mp4"))
    assert len(copies) == 4
    stamps = [p.stat().st_mtime_ns for p in copies]
    again = robustness(labelled, work, "none", "crf:38", python=python)
    assert again.returncode == 0, again.stderr
    assert [p.stat().st_mtime_ns for p in copies] == stamps  # cached copies reused
    assert "4 of 4 videos already done" in again.stderr


@pytest.mark.slow
def test_no_scored_video_is_an_error_naming_the_perturbation(labelled, python, tmp_path):
    faceless = tmp_path / "faceless"
    faceless.mkdir()
    write_video(faceless / "gradient.mp4", gradient_frames(12), fps=FPS)
    labels = tmp_path / "labels.csv"
    labels.write_text("filename,label\ngradient.mp4,REAL\n")
    result = run_script(python, "bench/robustness.py", "--weights-dir", labelled / "weights", "--models", "tiny",
                        "--test-dir", faceless, "--labels", labels, "--work-dir", tmp_path / "out", "--workers", "0",
                        "--perturbations", "none", check=False)
    assert result.returncode == 1
    assert "none: no video could be scored" in result.stderr and "predictions.csv.errors.csv" in result.stderr
    assert not (tmp_path / "out" / "robustness.csv").exists()
