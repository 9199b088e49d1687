"""Prediction reasons about people: a two-person video gives two stable tracks, per-person scores and outputs."""
from __future__ import annotations

import csv
import dataclasses
import json

import cv2
import numpy as np
import pytest
import torch
from helpers import run_script
from skimage import data as skdata
from helpers import save_release_checkpoint, write_video

import kernel_utils as ku
from core.card import RELEASE_CARD, ModelCard
from core.models import DeepFakeClassifier
from inference import resume
from inference.outputs import write_outputs
from inference.people import PEOPLE_COLUMNS
from inference.pipeline import PredictionConfig, predict_videos

WIDTH, HEIGHT = 640, 320


def two_people_frames(count: int) -> list[np.ndarray]:
    """The astronaut on the left and her mirror image, smaller, on the right, both drifting a little."""
    face = skdata.astronaut()
    left = cv2.resize(face, (240, 240), interpolation=cv2.INTER_AREA)
    right = cv2.resize(face[:, ::-1], (190, 190), interpolation=cv2.INTER_AREA)
    frames = []
    for i in range(count):
        canvas = np.full((HEIGHT, WIDTH, 3), 90, np.uint8)
        canvas[20 + i % 10:260 + i % 10, 20 + 2 * i:260 + 2 * i] = left
        canvas[60:250, 400 - i:590 - i] = right
        frames.append(canvas)
    return frames


@pytest.fixture(scope="module")
def scene(tmp_path_factory):
    root = tmp_path_factory.mktemp("people")
    (root / "videos").mkdir()
    write_video(root / "videos" / "two.mp4", two_people_frames(30))
    torch.manual_seed(5)
    model = DeepFakeClassifier("efficientnet_lite0", pretrained=False).eval()
    (root / "weights").mkdir()
    save_release_checkpoint(model, root / "weights" / "model")
    return root, model


def small_card(**changes) -> ModelCard:
    return ModelCard(encoder="efficientnet_lite0", input_size=96, frames_per_video=8, **changes)


def test_two_people_give_two_tracks_each_on_its_side_and_the_default_score_is_unchanged(scene):
    root, model = scene
    result = next(predict_videos([root / "videos" / "two.mp4"], [model], PredictionConfig(card=small_card()),
                                 progress=False))
    tracks = np.asarray(result.crop_tracks)
    assert sorted(set(tracks.tolist())) == [0, 1] and len(tracks) == len(result.crop_keys) == 16
    centres = (result.crop_boxes[:, 0] + result.crop_boxes[:, 2]) / 2
    assert np.all(centres[tracks == 0] < WIDTH / 2) and np.all(centres[tracks == 1] > WIDTH / 2)  # largest first
    assert [(p["track"], p["frames"], p["decided"]) for p in result.people] == [(0, 8, 0), (1, 8, 0)]
    assert list(result.people[0]) == list(PEOPLE_COLUMNS) and result.aggregation == "confident"
    # the winner's score over every crop, whatever the tracks
    assert result.score == ku.ensemble_score(result.crop_scores[None].astype(np.float32), small_card())

    per_person = next(predict_videos([root / "videos" / "two.mp4"], [model],
                                      PredictionConfig(card=small_card(aggregation="per_person")), progress=False))
    assert per_person.score == max(p["score"] for p in per_person.people)
    assert sum(p["decided"] for p in per_person.people) == 1 and per_person.aggregation == "per_person"
    assert [p["score"] for p in per_person.people] == [p["score"] for p in result.people]

    short = next(predict_videos([root / "videos" / "two.mp4"], [model],
                                PredictionConfig(card=small_card(aggregation="per_person", person_min_frames=9)),
                                progress=False))
    assert short.score == result.score and not any(p["decided"] for p in short.people)  # no track long enough

    record = json.loads(json.dumps(resume.to_record(per_person)))
    back = resume.from_record(record)
    assert back.crop_tracks == per_person.crop_tracks and back.people == per_person.people
    np.testing.assert_array_equal(back.crop_boxes, per_person.crop_boxes)
    assert back.aggregation == "per_person"

    write_outputs([back], root / "out.csv")
    with open(root / "out.csv.people.csv", newline="") as handle:
        people = list(csv.DictReader(handle))
    assert [(r["track"], r["decided"]) for r in people] == [(str(p["track"]), str(p["decided"]))
                                                             for p in per_person.people]
    with open(root / "out.csv.crops.csv", newline="") as handle:
        assert [int(r["track"]) for r in csv.DictReader(handle)] == per_person.crop_tracks


def test_cards_without_tracker_fields_get_the_defaults():
    old = RELEASE_CARD.to_dict()
    for name in ("track_min_iou", "track_max_centre_shift", "track_max_size_ratio", "track_max_gap",
                 "track_cut_difference", "person_min_frames"):
        old.pop(name)
    assert ModelCard.from_dict(old) == RELEASE_CARD and RELEASE_CARD.aggregation == "confident"
    assert dataclasses.replace(RELEASE_CARD, aggregation="per_person").tracker() == RELEASE_CARD.tracker()


@pytest.mark.slow
def test_predict_folder_aggregation_overrides_the_card(scene, python):
    root, _model = scene
    common = ["--weights-dir", root / "weights", "--models", "model", "--test-dir", root / "videos", "--workers",
              "0", "--encoder", "efficientnet_lite0", "--size", "96", "--frames-per-video", "8"]
    run = run_script(python, "predict_folder.py", *common, "--output", root / "cli.csv", "--aggregation",
                     "per_person")
    assert "aggregation per_person overrides the card's confident" in run.stderr
    with open(root / "cli.csv.people.csv", newline="") as handle:
        people = list(csv.DictReader(handle))
    with open(root / "cli.csv", newline="") as handle:
        label = float(next(csv.DictReader(handle))["label"])
    assert len(people) == 2 and [r["decided"] for r in people].count("1") == 1
    assert label == pytest.approx(max(float(r["score"]) for r in people), abs=1e-6)
