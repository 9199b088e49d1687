"""kernel_utils building blocks and checkpoint loading, on small real inputs."""
from __future__ import annotations

import pickle
from pathlib import PurePosixPath

import numpy as np
import pytest
import torch

import kernel_utils as ku
from core.card import ModelCard
from core.checkpoints import CheckpointError, load_classifier, read_checkpoint, state_dict_of
from core.video import VideoReadError, half_size
from helpers import (corrupt_file, face_frames, gradient_frames, save_release_checkpoint, write_truncated_video,
                     write_video)
from core.models import DeepFakeClassifier

SMALL_ENCODER = "efficientnet_lite0"


# ---------------------------------------------------------------- confident strategy

def scores(*groups):
    return np.concatenate([np.full(n, v) for n, v in groups])


@pytest.mark.parametrize("p, expected", [
    (scores((13, 0.9), (19, 0.5)), 0.9),  # 32 faces: 13 > 32 // 2.5 = 12.0 and > 11 -> mean of the fakes
    (scores((12, 0.9), (20, 0.5)), (12 * 0.9 + 20 * 0.5) / 32),  # 12 is not > 12.0 -> plain mean
    (scores((26, 0.95), (38, 0.4)), 0.95),  # 64 faces: 26 > 25.0
    (scores((25, 0.95), (39, 0.4)), (25 * 0.95 + 39 * 0.4) / 64),  # 25 is not > 25.0
    (scores((10, 0.9)), 0.9),  # all fake but only 10 (not > 11): plain mean, equal here
    (scores((4, 0.9), (1, 0.5)), (4 * 0.9 + 0.5) / 5),  # few faces: never the fake branch
    (scores((19, 0.1), (1, 0.9)), 0.1),  # 19 real > 0.9 * 20 = 18 -> mean of the reals
    (scores((18, 0.1), (2, 0.9)), (18 * 0.1 + 2 * 0.9) / 20),  # 18 is not > 18
    (scores((30, 0.05), (3, 0.15), (1, 0.6)), (30 * 0.05 + 3 * 0.15) / 33),  # 33 > 30.6 reals; 34 faces
    (np.array([0.3]), 0.3),  # one face (the original crashed on squeeze())
    (np.array([0.1]), 0.1),
    (np.array([[0.95]]), 0.95),
])
def test_confident_strategy_branches(p, expected):
    assert ku.confident_strategy(p) == pytest.approx(expected, abs=1e-12)


def test_confident_strategy_needs_a_face():
    with pytest.raises(ValueError):
        ku.confident_strategy(np.array([]))


def test_ensemble_is_mean_of_per_model_strategies():
    model_a = scores((13, 0.9), (19, 0.5))  # -> 0.9
    model_b = scores((32, 0.5))  # -> 0.5
    assert ku.ensemble_score(np.stack([model_a, model_b])) == pytest.approx(0.7)


# ---------------------------------------------------------------- frames

def test_sample_indices_match_linspace_and_drop_duplicates():
    assert ku.sample_frame_indices(300, 32) == np.linspace(0, 299, 32).astype(int).tolist()
    assert ku.sample_frame_indices(10, 32) == list(range(10))
    assert ku.sample_frame_indices(1, 32) == [0]


def test_short_video_gives_every_frame(tmp_path):
    path = write_video(tmp_path / "short.mp4", gradient_frames(7))
    sampled = ku.read_sampled_frames(path, 32)
    assert sampled.indices == list(range(7)) and len(sampled.frames) == 7 and not sampled.resampled


def test_header_count_too_high_is_resampled(tmp_path):
    path = write_truncated_video(tmp_path / "truncated.mp4", gradient_frames(40))
    sampled = ku.read_sampled_frames(path, 8)
    assert sampled.resampled and len(sampled.frames) == 8
    assert sampled.indices[0] == 0 and sampled.indices[-1] < 39  # spans what actually decodes


def test_unknown_header_count(tmp_path):
    path = write_video(tmp_path / "stream.ts", gradient_frames(20))  # MPEG-TS stores no frame count
    sampled = ku.read_sampled_frames(path, 5)
    assert sampled.indices == ku.sample_frame_indices(20, 5)


def test_corrupt_video_raises_naming_the_file(tmp_path):
    path = corrupt_file(tmp_path / "broken.mp4")
    with pytest.raises(VideoReadError, match="broken.mp4"):
        ku.read_sampled_frames(path)


def test_faces_are_cropped_from_full_resolution(tmp_path):
    from core import faces

    sampled = ku.read_sampled_frames(write_video(tmp_path / "face.mp4", face_frames(4)), 4)
    mtcnn = faces.make_mtcnn(faces.INFERENCE_THRESHOLDS)
    boxes = ku.detect_faces(mtcnn, [half_size(f) for f in sampled.frames], frames_per_call=1)
    crops = ku.crop_faces(sampled, boxes, ModelCard(encoder=SMALL_ENCODER, input_size=96))
    assert crops.inputs.shape == (4, 96, 96, 3) and crops.keys == [(i, 0) for i in range(4)]
    x1, y1, x2, y2 = faces.scale_box(boxes[0][0])
    assert 40 + 100 < (x1 + x2) / 2 < 40 + 200  # the astronaut's face, in full-res pixels (pasted at x=40)


# ---------------------------------------------------------------- checkpoints

@pytest.fixture(scope="module")
def small_model():
    torch.manual_seed(0)
    return DeepFakeClassifier(SMALL_ENCODER, pretrained=False).eval()


@pytest.mark.parametrize("legacy_format", [True, False])
def test_release_checkpoint_loads_strictly_with_same_logits(tmp_path, small_model, legacy_format):
    path = save_release_checkpoint(small_model, tmp_path / "final_111_DeepFakeClassifier_x_0_36", legacy_format)
    if not legacy_format:
        assert "numpy.core.multiarray.scalar" in torch.serialization.get_unsafe_globals_in_checkpoint(path)
    with pytest.raises(pickle.UnpicklingError):  # what torch >= 2.6 does without our allow-list
        torch.load(path, map_location="cpu", weights_only=True)
    loaded = load_classifier(path, overrides={"encoder": SMALL_ENCODER}).model
    x = torch.randn(2, 3, 96, 96)
    with torch.inference_mode():
        assert torch.equal(loaded(x), small_model(x))


def test_trainer_checkpoint_with_optimizer_loads(tmp_path, small_model):
    optimizer = torch.optim.SGD(small_model.parameters(), lr=0.1, momentum=0.9)
    path = tmp_path / "ours.pt"
    torch.save({"epoch": 3, "state_dict": {f"module.{k}": v for k, v in small_model.state_dict().items()},
                "optimizer": optimizer.state_dict(), "bce_best": np.float64(0.3)}, path)
    assert set(state_dict_of(read_checkpoint(path), path)) == set(small_model.state_dict())


def test_mismatched_checkpoint_names_the_keys(tmp_path, small_model):
    state = {f"module.{k}": v for k, v in small_model.state_dict().items()}
    del state["module.fc.bias"]
    state["module.fc.weight"] = torch.zeros(1, 7)
    state["module.extra.weight"] = torch.zeros(1)
    path = tmp_path / "bad"
    torch.save({"state_dict": state}, path)
    with pytest.raises(CheckpointError) as info:
        load_classifier(path, overrides={"encoder": SMALL_ENCODER})
    message = str(info.value)
    assert "bad" in message and "missing: fc.bias" in message and "unexpected: extra.weight" in message
    assert "fc.weight (1, 7) vs model (1, 1280)" in message


def test_unsafe_checkpoint_needs_trust(tmp_path, small_model):
    path = tmp_path / "odd"
    torch.save({"state_dict": small_model.state_dict(), "data_root": PurePosixPath("/data")}, path)  # not allow-listed
    with pytest.raises(CheckpointError, match="--trusted-checkpoints"):
        read_checkpoint(path)
    assert set(state_dict_of(read_checkpoint(path, trusted=True), path)) == set(small_model.state_dict())


def test_checkpoint_check_command(tmp_path, small_model, capsys):
    from core.checkpoints import main

    good = save_release_checkpoint(small_model, tmp_path / "good")
    assert main(["--encoder", SMALL_ENCODER, str(good)]) == 0
    assert "OK" in capsys.readouterr().out
    content = good.read_bytes()
    truncated = tmp_path / "truncated"
    # Where a cut lands decides which part of torch's legacy loader fails: a sweep over the pickled header
    # (the first 4,000 bytes) and across the tensor data.
    for length in [*range(1, 4000, 97), *range(4000, len(content), len(content) // 16)]:
        truncated.write_bytes(content[:length])
        assert main(["--encoder", SMALL_ENCODER, str(truncated)]) == 1, length
        captured = capsys.readouterr()
        assert f"FAILED  {truncated}" in captured.err, (length, captured.err)
        assert "may be truncated" in captured.err and "fetch it again" in captured.err


def test_submission_script_asks_for_the_download(tmp_path):
    from helpers import run_script

    result = run_script("bash", "predict_submission.sh", tmp_path, tmp_path / "sub.csv",
                        env={"WEIGHTS_DIR": str(tmp_path)}, check=False)
    assert result.returncode == 1 and "weights/download_weights.sh" in result.stderr
    assert "final_888_DeepFakeClassifier_tf_efficientnet_b7_ns_0_40" in result.stderr


# ---------------------------------------------------------------- devices

@pytest.mark.parametrize("name, local_rank, expected", [
    ("cpu", 2, "cpu"),
    ("auto", 0, "cpu"),  # no CUDA on this machine
])
def test_device_choice(name, local_rank, expected):
    from core.runtime import pick_device

    assert pick_device(name, local_rank) == torch.device(expected)


@pytest.mark.parametrize("name", ["gpu", "tpu:0", "cuda:x"])
def test_unknown_device_is_refused(name):
    from core.runtime import pick_device

    with pytest.raises(ValueError, match="--device must be"):
        pick_device(name)


def test_cuda_without_cuda_is_refused():
    from core.runtime import pick_device

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    with pytest.raises(RuntimeError, match="CUDA is not available"):
        pick_device("cuda")


def test_frames_too_small_for_any_face_give_no_face_instead_of_an_error():
    from core import faces

    mtcnn = faces.make_mtcnn(faces.INFERENCE_THRESHOLDS)
    tiny = [np.full((16, 24, 3), 128, np.uint8)] * 2  # a 48x32 video's half-size frames
    assert faces.detect_batch(mtcnn, tiny) == [None, None]
    assert ku.detect_faces(mtcnn, tiny, frames_per_call=2) == [None, None]
