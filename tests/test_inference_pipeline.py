"""The overlapped pipeline gives the same numbers as the original's sequential order, in both detector layouts."""
from __future__ import annotations

import numpy as np
import pytest
import torch

import kernel_utils as ku
from inference.pipeline import NO_FACE, UNREADABLE, PredictionConfig, predict_videos
from core import faces
from core.card import ModelCard
from core.video import half_size
from helpers import corrupt_file, face_frames, gradient_frames, write_video
from core.models import DeepFakeClassifier


@pytest.fixture(scope="module")
def videos(tmp_path_factory):
    root = tmp_path_factory.mktemp("pipeline")
    return [write_video(root / "a_face.mp4", face_frames(9)), corrupt_file(root / "b_corrupt.mp4"),
            write_video(root / "c_gradient.mp4", gradient_frames(6)), write_video(root / "d_face.mp4", face_frames(5))]


def card(size: int, frames_per_video: int) -> ModelCard:
    return ModelCard(encoder="efficientnet_lite0", input_size=size, frames_per_video=frames_per_video)


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(3)
    return DeepFakeClassifier("efficientnet_lite0", pretrained=False).eval()


def sequential_scores(paths, model, size, frames_per_video):
    """The original's order, written out with the building blocks: decode, detect frame by frame, classify."""
    mtcnn = faces.make_mtcnn(faces.INFERENCE_THRESHOLDS)
    scores = {}
    for path in paths:
        sampled = ku.read_sampled_frames(path, frames_per_video)
        boxes = [faces.detect_batch(mtcnn, [half_size(frame)])[0] for frame in sampled.frames]
        crops = ku.crop_faces(sampled, boxes, card(size, frames_per_video))
        probabilities = ku.predict_probabilities([model], crops.inputs, torch.device("cpu"), torch.float32, 64)
        scores[path.name] = ku.ensemble_score(probabilities)
    return scores


@pytest.mark.parametrize("detect_in_workers", [True, False])
def test_pipeline_matches_sequential(videos, model, detect_in_workers):
    config = PredictionConfig(card=card(96, 5), workers=2, detect_in_workers=detect_in_workers)
    results = list(predict_videos(videos, [model], config, progress=False))
    assert [r.name for r in results] == [p.name for p in videos]
    by_name = {r.name: r for r in results}
    assert by_name["b_corrupt.mp4"].failure == UNREADABLE and "b_corrupt.mp4" in by_name["b_corrupt.mp4"].reason
    assert by_name["c_gradient.mp4"].failure == NO_FACE
    expected = sequential_scores([videos[0], videos[3]], model, 96, 5)
    for name, score in expected.items():
        assert by_name[name].score == pytest.approx(score, abs=1e-6)
        assert len(by_name[name].crop_keys) == 5 and np.all(by_name[name].crop_scores > 0)
