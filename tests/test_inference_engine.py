"""predict_folder.py --engine openvino: scores next to PyTorch's on a briefly trained model, the conversion cache,
and the refusals that come before any work."""
from __future__ import annotations

import csv
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from sklearn.metrics import roc_auc_score

from helpers import run_script
from helpers import face_frames, write_video
from core.card import ModelCard
from core.checkpoints import prefixed_state_dict
from core.model_input import normalize_batch
from core.models import SHIPPED_LITE0, DeepFakeClassifier
from inference import engine
from inference.pipeline import PredictionConfig, prepare_video

openvino = pytest.importorskip("openvino")

CARD = ModelCard(encoder="efficientnet_lite0", input_size=128, frames_per_video=6)
RUN = ["--workers", "0", "--batch-size", "8"]


def has_native(precision: str) -> bool:
    return engine.OPENVINO_PRECISIONS[precision][1] in openvino.Core().get_property("CPU", "OPTIMIZATION_CAPABILITIES")


def tinted(frames: list[np.ndarray], shift: int) -> list[np.ndarray]:
    """A crude 'manipulation' of the face: a warmer, softer copy of the picture (what the model learns to see)."""
    out = []
    for frame in frames:
        changed = cv2.GaussianBlur(frame, (5, 5), 0).astype(np.int16)
        changed[..., 0] += shift
        out.append(np.clip(changed, 0, 255).astype(np.uint8))
    return out


def save_with_card(model: torch.nn.Module, path: Path, card: ModelCard = CARD) -> Path:
    torch.save({"epoch": 1, "state_dict": prefixed_state_dict(model), "card": card.to_dict()}, path)
    return path


def train_briefly(videos: list[Path], labels: list[int], steps: int = 12) -> torch.nn.Module:
    """lite0 from its ImageNet weights, a few Adam steps on the videos' own face crops: scores that spread."""
    config = PredictionConfig(card=CARD, workers=0)
    inputs, targets = [], []
    for path, label in zip(videos, labels):
        crops = prepare_video(path, config).crops.inputs
        inputs.append(crops)
        targets += [label] * len(crops)
    x = normalize_batch(torch.from_numpy(np.concatenate(inputs)), torch.float32, CARD.mean, CARD.std)
    y = torch.tensor(targets, dtype=torch.float32)
    torch.manual_seed(0)
    model = DeepFakeClassifier(CARD.encoder, pretrained_file=SHIPPED_LITE0, head_init_std=0.01)
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-4)
    model.train()
    for _ in range(steps):
        optimizer.zero_grad()
        loss = torch.nn.functional.binary_cross_entropy_with_logits(model(x).flatten(), y)
        loss.backward()
        optimizer.step()
    return model.eval()


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """Eight labelled videos (the astronaut, half of them 'manipulated') and a lite0 trained on them."""
    root = tmp_path_factory.mktemp("engine")
    videos = root / "videos"
    videos.mkdir()
    frames = face_frames(40)
    labels = {}
    for i in range(4):
        real = frames[i * 10:i * 10 + 8]
        write_video(videos / f"real_{i}.mp4", real)
        write_video(videos / f"fake_{i}.mp4", tinted(real, 12 + 6 * i))
        labels[f"real_{i}.mp4"], labels[f"fake_{i}.mp4"] = 0, 1
    names = sorted(labels)
    model = train_briefly([videos / name for name in names], [labels[name] for name in names])
    weights = root / "weights"
    weights.mkdir()
    save_with_card(model, weights / "lite0_trained")
    return root, labels


def predict(root: Path, output: Path, *extra, check: bool = True):
    return run_script(sys.executable, "predict_folder.py", "--weights-dir", root / "weights",
                      "--models", "lite0_trained",
                      "--test-dir", root / "videos", "--output", output, "--device", "cpu", *RUN, *extra,
                      check=check)


def scores(output: Path) -> dict[str, float]:
    with open(output, newline="") as handle:
        return {row["filename"]: float(row["label"]) for row in csv.DictReader(handle)}


@pytest.fixture(scope="module")
def torch_scores(trained, tmp_path_factory):
    root, _ = trained
    output = tmp_path_factory.mktemp("torch") / "torch.csv"
    predict(root, output)
    return scores(output)


def auc(found: dict[str, float], labels: dict[str, int]) -> float:
    names = sorted(labels)
    return roc_auc_score([labels[n] for n in names], [found[n] for n in names])


@pytest.mark.slow
def test_openvino_fp32_scores_match_torch_and_the_conversion_is_cached(trained, torch_scores, tmp_path):
    root, labels = trained
    assert len(set(np.round(list(torch_scores.values()), 3))) > 4, "the trained scores should spread"
    first = predict(root, tmp_path / "ov.csv", "--engine", "openvino", "--engine-cache", tmp_path / "cache")
    assert "OpenVINO model converted in" in first.stderr
    found = scores(tmp_path / "ov.csv")
    assert found.keys() == torch_scores.keys()
    difference = max(abs(found[n] - torch_scores[n]) for n in found)
    print(f"openvino fp32: largest video-score difference {difference:.3g}, AUC {auc(found, labels):.4f} "
          f"(torch {auc(torch_scores, labels):.4f})")
    assert difference <= 1e-4
    assert abs(auc(found, labels) - auc(torch_scores, labels)) <= 1e-9

    again = predict(root, tmp_path / "ov2.csv", "--engine", "openvino", "--engine-cache", tmp_path / "cache")
    assert "OpenVINO model found in the cache" in again.stderr
    assert scores(tmp_path / "ov2.csv") == found
    # an override changes the card as used: converted again, into a second cache entry
    other = predict(root, tmp_path / "ov3.csv", "--engine", "openvino", "--engine-cache", tmp_path / "cache",
                    "--frames-per-video", "5")
    assert "OpenVINO model converted in" in other.stderr
    assert len([p for p in (tmp_path / "cache").iterdir() if not p.name.startswith(".")]) == 2


@pytest.mark.slow
@pytest.mark.skipif(not has_native("bf16"), reason="this CPU has no native bf16 (AVX512_BF16 or AMX)")
def test_openvino_bf16_stays_within_its_bounds(trained, torch_scores, tmp_path):
    root, labels = trained
    predict(root, tmp_path / "bf16.csv", "--engine", "openvino", "--precision", "bf16", "--engine-cache", tmp_path)
    found = scores(tmp_path / "bf16.csv")
    difference = max(abs(found[n] - torch_scores[n]) for n in found)
    print(f"openvino bf16: largest video-score difference {difference:.3g}, AUC {auc(found, labels):.4f} "
          f"(torch {auc(torch_scores, labels):.4f})")
    # bf16 keeps 8 significant bits of every weight and activation, and the rounding accumulates over the
    # network: measured 0.021 on this model and 0.017-0.029 on FF++-trained lite0 models (docs/engine.md). A
    # broken conversion moves scores by far more. fp32 stays within 1e-6, so a difference shows bf16 really ran.
    assert 1e-4 < difference <= 0.05
    assert abs(auc(found, labels) - auc(torch_scores, labels)) <= 0.01


def refused(argv: list[str], capsys) -> str:
    """predict_folder's own argument check: exit 2 and the message, before any checkpoint or video is opened."""
    import predict_folder

    with pytest.raises(SystemExit) as exit_info:
        predict_folder.parse_args(["--models", "absent.pth", *argv])
    assert exit_info.value.code == 2
    return capsys.readouterr().err


@pytest.mark.skipif(has_native("bf16"), reason="this CPU runs bf16 natively")
def test_bf16_is_refused_where_openvino_would_quietly_run_fp32(tmp_path, capsys):
    message = refused(["--test-dir", str(tmp_path), "--engine", "openvino", "--device", "cpu", "--precision", "bf16"],
                      capsys)
    assert "no native BF16" in message and "--precision fp32" in message


def test_openvino_on_cuda_is_refused_before_any_work(tmp_path, capsys):
    assert "CPU only" in engine.refusal("openvino", "cuda:0")
    assert "CPU only" in engine.refusal("openvino", torch.device("cuda", 1), "fp16")
    assert engine.refusal("torch", "cuda") is None
    assert "CPU only" in refused(["--test-dir", str(tmp_path), "--engine", "openvino", "--device", "cuda"], capsys)
    assert "--engine torch only" in refused(["--test-dir", str(tmp_path), "--engine", "openvino", "--compile"],
                                            capsys)


class Unconvertible(torch.nn.Module):
    """An eigen-decomposition, which OpenVINO's PyTorch frontend does not convert."""

    def forward(self, x):
        return torch.linalg.eigh(x[:, 0] @ x[:, 0].transpose(1, 2))[0][:, :1]


def small_net(seed: int) -> torch.nn.Module:
    torch.manual_seed(seed)
    return torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.ReLU(), torch.nn.AdaptiveAvgPool2d(1),
                               torch.nn.Flatten(), torch.nn.Linear(4, 1)).eval()


def test_a_failed_conversion_names_the_checkpoint_and_leaves_no_cache_entry(tmp_path):
    checkpoint = tmp_path / "odd.pt"
    checkpoint.write_bytes(b"weights")
    with pytest.raises(engine.EngineError, match="odd.pt: OpenVINO could not convert"):
        engine.openvino_classifier(Unconvertible(), checkpoint, CARD.to_dict(), 16, "fp32", tmp_path / "cache")
    assert list((tmp_path / "cache").iterdir()) == []


def test_the_cache_is_keyed_by_the_checkpoint_bytes_and_the_card(tmp_path):
    cache, checkpoint = tmp_path / "cache", tmp_path / "model.pt"
    x = torch.randn(3, 3, 16, 16)
    net = small_net(0)
    torch.save(net.state_dict(), checkpoint)
    card = CARD.to_dict()

    def run(model, card_dict):
        classifier, conversion = engine.openvino_classifier(model, checkpoint, card_dict, 16, "fp32", cache)
        with torch.no_grad():
            assert torch.allclose(classifier(x), model(x), atol=1e-5)  # the model asked for, not a stale one
        return conversion.converted

    assert run(net, card) is True
    assert run(net, card) is False
    changed = small_net(1)
    torch.save(changed.state_dict(), checkpoint)  # new bytes, same name and card
    assert run(changed, card) is True
    assert run(changed, {**card, "mean": [0.5, 0.5, 0.5]}) is True
    assert run(changed, {**card, "calibration": {"temperature": 2.0, "bias": 0.0}}) is False  # outside the network
    assert len(list(cache.iterdir())) == 3


def test_openvino_infers_a_large_batch_a_few_crops_at_a_time(tmp_path):
    """The request never sees more than OPENVINO_CROPS_PER_CALL crops (the plugin keeps buffers sized for the
    largest call), and every crop's logit is the one a call of its own gives."""
    checkpoint = tmp_path / "model.pt"
    net = small_net(2)
    torch.save(net.state_dict(), checkpoint)
    classifier, _ = engine.openvino_classifier(net, checkpoint, CARD.to_dict(), 16, "fp32", tmp_path / "cache")
    x = torch.randn(2 * engine.OPENVINO_CROPS_PER_CALL + 1, 3, 16, 16)
    logits = classifier(x)
    assert logits.shape == (len(x), 1)
    assert tuple(classifier.request.get_input_tensor(0).shape)[0] <= engine.OPENVINO_CROPS_PER_CALL
    alone = torch.cat([classifier(x[i:i + 1]) for i in range(len(x))])
    assert torch.allclose(logits, alone, atol=1e-6)
    with torch.no_grad():
        assert torch.allclose(logits, net(x), atol=1e-5)


def test_the_torch_engine_keeps_the_run_key_and_the_models():
    assert engine.run_label("torch", "auto", torch.float32) == "torch.float32"
    assert engine.run_label("openvino", "auto", torch.float32) == "openvino fp32"
    assert engine.model_dtype("torch", torch.bfloat16) is torch.bfloat16
    assert engine.model_dtype("openvino", torch.bfloat16) is torch.float32
