"""The model card travels with the weights: predict_folder scores from it, overrides are explicit, cards must agree."""
from __future__ import annotations

import csv
import sys

import pytest
import torch

from helpers import face_frames, run_script, save_release_checkpoint, write_video
from core.card import RELEASE_CARD, CardError, ModelCard, card_from_config, check_same_pipeline
from core.checkpoints import load_classifier, prefixed_state_dict, read_checkpoint
from core.models import DeepFakeClassifier
from training.tools.config import load_config

SMALL = "efficientnet_lite0"


def save_carded_checkpoint(path, card: ModelCard, seed: int = 0):
    """A checkpoint as the trainer writes it: 'module.' weights plus the model card."""
    torch.manual_seed(seed)
    model = DeepFakeClassifier(card.encoder, pretrained=False)
    torch.save({"epoch": 1, "state_dict": prefixed_state_dict(model), "bce_best": 0.5, "card": card.to_dict()}, path)
    return path


@pytest.fixture(scope="module")
def scene(tmp_path_factory):
    root = tmp_path_factory.mktemp("card")
    videos = root / "videos"
    videos.mkdir()
    write_video(videos / "face.mp4", face_frames(12))
    write_video(videos / "face_b.mp4", face_frames(9))
    weights = root / "weights"
    weights.mkdir()
    card_160 = ModelCard(encoder=SMALL, input_size=160, frames_per_video=4)
    save_carded_checkpoint(weights / "lite0_160", card_160, seed=1)
    save_carded_checkpoint(weights / "lite0_160_b", card_160, seed=2)
    save_carded_checkpoint(weights / "lite0_128", ModelCard(encoder=SMALL, input_size=128, frames_per_video=4))
    return root


def predict(scene, output, *extra, check=True):
    return run_script(sys.executable, "predict_folder.py", "--weights-dir", scene / "weights", "--test-dir",
                      scene / "videos", "--output", output, "--workers", "0", *extra, check=check)


def scores(path) -> dict[str, float]:
    with open(path, newline="") as handle:
        return {row["filename"]: float(row["label"]) for row in csv.DictReader(handle)}


@pytest.mark.slow
def test_card_input_size_is_used_without_size_option(scene, tmp_path):
    from_card = predict(scene, tmp_path / "card.csv", "--models", "lite0_160")
    explicit = predict(scene, tmp_path / "explicit.csv", "--models", "lite0_160", "--size", "160")
    assert scores(tmp_path / "card.csv") == scores(tmp_path / "explicit.csv")
    assert "160 px, 4 frames per video" in from_card.stderr
    assert "overrides" not in from_card.stderr and "overrides" not in explicit.stderr  # same value: no override


@pytest.mark.slow
def test_an_explicit_value_that_differs_is_used_and_announced(scene, tmp_path):
    result = predict(scene, tmp_path / "small.csv", "--models", "lite0_160", "--size", "128")
    assert "lite0_160: input_size 128 overrides the card's 160" in result.stderr
    predict(scene, tmp_path / "card.csv", "--models", "lite0_160")
    assert scores(tmp_path / "small.csv") != scores(tmp_path / "card.csv")


@pytest.mark.slow
def test_an_ensemble_whose_cards_disagree_is_refused(scene, tmp_path):
    result = predict(scene, tmp_path / "mixed.csv", "--models", "lite0_160", "lite0_128", check=False)
    assert result.returncode == 2
    assert "input_size" in result.stderr and "lite0_160" in result.stderr and "lite0_128" in result.stderr
    assert not (tmp_path / "mixed.csv").exists()
    agreeing = predict(scene, tmp_path / "same.csv", "--models", "lite0_160", "lite0_160_b")
    assert "2 videos: scored 2" in agreeing.stderr


def test_release_checkpoint_loads_strictly_and_gets_the_original_card(tmp_path):
    torch.manual_seed(0)
    model = DeepFakeClassifier("tf_efficientnet_b7_ns", pretrained=False).eval()
    path = save_release_checkpoint(model, tmp_path / "final_111_DeepFakeClassifier_tf_efficientnet_b7_ns_0_36")
    loaded = load_classifier(path)
    assert loaded.card == RELEASE_CARD and loaded.stored_card is RELEASE_CARD and not loaded.overrides
    card = loaded.card
    assert (card.encoder, card.input_size, card.frames_per_video) == ("tf_efficientnet_b7_ns", 380, 32)
    assert loaded.card.detector_thresholds == (0.7, 0.8, 0.8) and loaded.card.aggregation == "confident"
    x = torch.randn(1, 3, 64, 64)
    with torch.inference_mode():
        assert torch.equal(loaded.model(x), model(x))


def test_card_round_trips_and_rejects_unknown_fields():
    card = ModelCard(encoder=SMALL, input_size=160, mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25))
    assert ModelCard.from_dict(card.to_dict()) == card
    with pytest.raises(CardError, match="unknown card field"):
        ModelCard.from_dict({**card.to_dict(), "input_sise": 3}, source="x.pt")
    with pytest.raises(CardError, match="aggregation"):
        ModelCard(encoder=SMALL, input_size=160, aggregation="median")


def test_ensemble_check_names_files_and_fields():
    a = ModelCard(encoder=SMALL, input_size=160)
    b = ModelCard(encoder="tf_efficientnet_b7_ns", input_size=160)  # another encoder is fine
    c = ModelCard(encoder=SMALL, input_size=160, std=(0.5, 0.5, 0.5))
    check_same_pipeline({"a.pt": a, "b.pt": b})
    with pytest.raises(CardError, match=r"std: .* in c.pt but .* in a.pt"):
        check_same_pipeline({"a.pt": a, "c.pt": c})


def test_config_gives_the_card():
    card = card_from_config(load_config("configs/demo_cpu.json"))
    assert (card.encoder, card.input_size, card.frames_per_video, card.aggregation) == (SMALL, 160, 32, "confident")


@pytest.mark.slow
def test_trainer_checkpoint_carries_its_card_and_predict_uses_it(preprocessed_demo, tmp_path):
    """End to end: train one tiny epoch at 160 px, then score with no size, encoder or frames option."""
    run_script(sys.executable, "training/pipelines/train_classifier.py", "--config", "configs/demo_cpu.json",
               "--data-dir", preprocessed_demo, "--output-dir", tmp_path / "weights", "--logdir", tmp_path / "logs",
               "--prefix", "t_", "--epochs", "1", "--batches-per-epoch", "1", "--workers", "0",
               "--override", "inference.frames_per_video=3")
    checkpoint_path = run_script(sys.executable, "training/pipelines/train_classifier.py", "--config",
                                 "configs/demo_cpu.json", "--data-dir", preprocessed_demo, "--output-dir",
                                 tmp_path / "weights", "--prefix", "t_", "--print-checkpoint").stdout.strip()
    card = read_checkpoint(checkpoint_path)["card"]
    assert (card["encoder"], card["input_size"], card["frames_per_video"]) == (SMALL, 160, 3)
    result = run_script(sys.executable, "predict_folder.py", "--weights-dir", tmp_path / "weights", "--models",
                        "t_DeepFakeClassifier_efficientnet_lite0_0_last", "--test-dir",
                        preprocessed_demo / "dfdc_train_part_0", "--output", tmp_path / "p.csv", "--workers", "0")
    assert "160 px, 3 frames per video" in result.stderr
    assert len(scores(tmp_path / "p.csv")) == 9


@pytest.mark.slow
def test_resume_last_without_a_checkpoint_starts_from_the_imagenet_weights(preprocessed_demo, tmp_path):
    """demo.sh, train.sh and bench/real_data.py always pass --resume last: a first run must still get the
    pretrained encoder (the frozen stem keeps those weights through training)."""
    from core.models import SHIPPED_LITE0, create_encoder

    run_script(sys.executable, "training/pipelines/train_classifier.py", "--config", "configs/demo_cpu.json",
               "--data-dir", preprocessed_demo, "--output-dir", tmp_path / "weights", "--logdir", tmp_path / "logs",
               "--prefix", "r_", "--epochs", "1", "--batches-per-epoch", "1", "--workers", "0", "--resume", "last")
    state = read_checkpoint(tmp_path / "weights" / "r_DeepFakeClassifier_efficientnet_lite0_0_last")["state_dict"]
    shipped = create_encoder(SMALL, pretrained=True, pretrained_file=SHIPPED_LITE0).state_dict()
    assert torch.equal(state["module.encoder.conv_stem.weight"], shipped["conv_stem.weight"])
