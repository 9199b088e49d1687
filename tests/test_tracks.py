"""The face tracker on box sequences: stable ids, gaps, people who leave, scene cuts, crowds, arbitrary input."""
from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from core.tracks import (
    CROWDED,
    PREDICTION_TRACKER,
    PREPROCESSING_TRACKER,
    link_tracks,
    scene_cuts,
)


def box(cx: float, cy: float, side: float) -> list[float]:
    return [cx - side / 2, cy - side / 2, cx + side / 2, cy + side / 2]


def two_people(frames: int, step: float = 1.0) -> list[list[list[float]]]:
    """A small face on the left and a larger one on the right, both drifting; detector order: largest first."""
    return [[box(300 + step * i, 120, 90), box(100 + step * i, 110, 60)] for i in range(frames)]


def test_two_people_keep_their_ids_numbered_by_size():
    ids, stats = link_tracks(two_people(30), PREPROCESSING_TRACKER)
    assert all(frame == [0, 1] for frame in ids)  # track 0 is the larger face, as detection index 0 was
    assert stats.tracks == 2 and stats.lost == 0 and stats.bridged_misses == 0


def test_detector_order_changes_do_not_swap_people():
    boxes = two_people(20)
    boxes[7] = boxes[7][::-1]  # the smaller face came first in one frame
    ids, _ = link_tracks(boxes, PREPROCESSING_TRACKER)
    assert ids[7] == [1, 0] and ids[8] == [0, 1]


def test_sampled_frames_nine_apart_link_with_the_prediction_settings():
    boxes = two_people(32, step=9 * 2.0)  # 2 px a frame, frames 9 apart: 18 px between samples
    ids, stats = link_tracks(boxes, PREDICTION_TRACKER)
    assert stats.tracks == 2 and all(frame == [0, 1] for frame in ids)


def test_short_gaps_are_bridged_and_counted():
    boxes = two_people(20)
    for i in (5, 6):
        boxes[i] = [boxes[i][0]]  # the left face is missed twice
    boxes[12] = None  # a frame without any face
    ids, stats = link_tracks(boxes, PREPROCESSING_TRACKER)
    assert stats.tracks == 2 and ids[12] is None and ids[7] == [0, 1]
    assert stats.bridged_misses == 2 + 2


def test_a_face_that_leaves_for_long_comes_back_as_a_new_track():
    boxes = [[box(100, 100, 60)] for _ in range(5)] + [None] * (PREPROCESSING_TRACKER.max_gap + 1) \
        + [[box(100, 100, 60)] for _ in range(5)]
    ids, stats = link_tracks(boxes, PREPROCESSING_TRACKER)
    assert ids[0] == [0] and ids[-1] == [1]
    assert stats.tracks == 2 and stats.lost == 1


def test_a_different_size_at_the_same_place_is_another_person():
    boxes = [[box(100, 100, 60)]] * 3 + [[box(100, 100, 150)]] * 3
    ids, _ = link_tracks(boxes, PREPROCESSING_TRACKER)
    assert ids[2] == [0] and ids[3] == [1]


def test_a_scene_cut_starts_new_tracks():
    dark, bright = np.full((64, 64, 3), 20, np.uint8), np.full((64, 64, 3), 220, np.uint8)
    frames = [dark] * 3 + [bright] * 3
    cuts = scene_cuts(frames, PREPROCESSING_TRACKER)
    assert cuts == [False, False, False, True, False, False]
    ids, stats = link_tracks([[box(30, 30, 20)]] * 6, PREPROCESSING_TRACKER, cuts)
    assert [frame[0] for frame in ids] == [0, 0, 0, 1, 1, 1] and stats.cuts == 1


def test_a_crowd_is_tracked_and_counted():
    crowd = [[box(60 + 120 * k, 100, 50 + k) for k in range(8)] for _ in range(10)]
    ids, stats = link_tracks(crowd, PREDICTION_TRACKER)
    assert stats.tracks == 8 and stats.crowded == 1 and 8 > CROWDED
    assert all(sorted(frame) == list(range(8)) for frame in ids)


frame_boxes = st.one_of(st.none(), st.lists(
    st.tuples(st.floats(0, 500), st.floats(0, 500), st.floats(2, 200), st.floats(2, 200)).map(
        lambda t: [t[0], t[1], t[0] + t[2], t[1] + t[3]]), min_size=0, max_size=7))


@settings(max_examples=150, deadline=None)
@given(st.lists(frame_boxes, max_size=25))
def test_any_box_sequence_gives_consistent_ids(boxes):
    ids, stats = link_tracks(boxes, PREDICTION_TRACKER)
    assert len(ids) == len(boxes)
    first = {}  # track -> (frame position, -side) where it first appears
    for position, (frame, found) in enumerate(zip(boxes, ids)):
        if not frame:
            assert found is None
            continue
        assert len(found) == len(frame) and len(set(found)) == len(found)  # one box per person per frame
        for (x1, y1, x2, y2), track in zip(frame, found):
            first.setdefault(track, (position, -np.sqrt((x2 - x1) * (y2 - y1))))
    assert sorted(first) == list(range(stats.tracks))
    order = [first[t] for t in range(stats.tracks)]
    assert order == sorted(order)  # numbered by first appearance, then largest first
