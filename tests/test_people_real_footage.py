"""Tracks and changed flags on real footage: FaceForensics++ videos composed side by side with PyAV."""
from __future__ import annotations

import csv
import json
from itertools import islice
from pathlib import Path

import cv2
import numpy as np
import pytest
from conftest import FFPP_ROOT
from test_inference_helpers import write_video

from core.layout import load_boxes
from core.video import iter_frames
from preprocessing import (
    detect_original_faces,
    extract_crops,
    generate_diffs,
    generate_folds,
)

FRAMES = 100  # detection every 10th frame: 10 frames with boxes
HALF = (640, 360)  # each side of a composite
PART = FFPP_ROOT / "dfdc_train_part_0"

pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(not (PART / "183.mp4").is_file(), reason="FaceForensics++ sample not present")]


def first_frames(path: Path, size=HALF) -> list[np.ndarray]:
    frames = [frame for _index, frame in islice(iter_frames(path, keep=lambda i: i < FRAMES), FRAMES)]
    return [cv2.resize(frame, size, interpolation=cv2.INTER_AREA) for frame in frames]


@pytest.fixture(scope="module")
def composites(tmp_path_factory):
    """part 0: two reals side by side, and the same with the left person a deepfake of it; a single real."""
    root = tmp_path_factory.mktemp("ffpp_people")
    part = root / "dfdc_train_part_0"
    part.mkdir()
    left, right, fake_left = (first_frames(PART / name) for name in ("183.mp4", "253.mp4", "deepfakes_183_253.mp4"))
    write_video(part / "pair.mp4", [np.hstack(pair) for pair in zip(left, right)])
    write_video(part / "pair_fake.mp4", [np.hstack(pair) for pair in zip(fake_left, right)])
    write_video(part / "single.mp4", first_frames(PART / "183.mp4", size=(960, 540)))
    (part / "metadata.json").write_text(json.dumps({
        "pair.mp4": {"label": "REAL", "original": None}, "single.mp4": {"label": "REAL", "original": None},
        "pair_fake.mp4": {"label": "FAKE", "original": "pair.mp4"}}))
    args = ["--root-dir", str(root), "--workers", "1"]
    for step in (detect_original_faces, extract_crops, generate_diffs):
        step.main(args)
    summary = generate_folds.main(args)
    return root, summary


def test_two_people_side_by_side_keep_one_track_each_on_their_side(composites):
    root, _summary = composites
    sides = {}
    for frame_boxes in load_boxes(root / "boxes" / "pair.json").values():
        for x1, _y1, x2, _y2, track in frame_boxes or []:
            sides.setdefault(int(track), set()).add((x1 + x2) / 2 < HALF[0] / 2)  # half-size coordinates
    assert sorted(sides) == [0, 1] and all(len(side) == 1 for side in sides.values())
    assert sides[0] != sides[1]


def test_the_swapped_side_is_changed_and_the_other_is_not(composites):
    root, summary = composites
    boxes = load_boxes(root / "boxes" / "pair.json")
    left_track = next(int(b[4]) for frame_boxes in boxes.values() for b in frame_boxes or []
                      if (b[0] + b[2]) / 2 < HALF[0] / 2)
    with open(root / "folds.csv", newline="") as handle:
        rows = [row for row in csv.DictReader(handle) if row["video"] == "pair_fake"]
    flags = {(int(row["track"]), row["changed"]) for row in rows}
    assert flags == {(left_track, "1"), (1 - left_track, "0")}
    assert summary.notes["fake tracks found unchanged"] == 1
    with open(root / "folds.csv", newline="") as handle:
        reals = [row for row in csv.DictReader(handle) if row["label"] == "0"]
    assert reals and all(row["changed"] == "" for row in reals)


def test_one_person_gives_one_track_over_nearly_all_frames(composites):
    root, _summary = composites
    boxes = load_boxes(root / "boxes" / "single.json")
    tracks = [int(b[4]) for frame_boxes in boxes.values() for b in frame_boxes or []]
    assert len(boxes) == FRAMES // 10 and tracks.count(0) >= 0.9 * len(boxes)
    names = [p.name for p in (root / "crops" / "single").glob("*.png")]
    assert sum(name.endswith("_0.png") for name in names) >= 0.9 * len(boxes)  # today's names: <frame>_0.png
