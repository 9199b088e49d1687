"""People in a scored video: its face crops grouped by track, a score per person, and the per_person aggregation.

A person's score is the winner's confident strategy over that track's crops, per model, then the mean over the
ensemble (as the video score is). Under `per_person` the video's score is the highest score among the tracks seen
in at least `person_min_frames` sampled frames; shorter tracks (a passer-by, a false detection) do not decide.
When no track is that long, the video is scored as the winner does, by the confident strategy over all its crops,
and no track is marked as deciding.
"""
from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import numpy as np

import kernel_utils as ku
from core import faces
from core.card import ModelCard
from core.tracks import TrackStats, link_tracks, scene_cuts

PEOPLE_COLUMNS = ("filename", "track", "frames", "first_frame", "last_frame", "x1", "y1", "x2", "y2", "score",
                  "decided")


def track_faces(half_frames: Sequence[np.ndarray], boxes: Sequence, card: ModelCard) -> tuple[list, TrackStats]:
    """Track id of every detected box per sampled frame (None where no face), linked with the card's settings."""
    settings = card.tracker()
    return link_tracks(boxes, settings, scene_cuts(half_frames, settings))


def crop_tracks_and_boxes(keys: Sequence[tuple[int, int]], frame_indices: Sequence[int], boxes: Sequence,
                          track_ids: Sequence, card: ModelCard) -> tuple[list[int], np.ndarray]:
    """Per crop key (frame, face index): its track id and its face box in full-frame pixels (float32 (n, 4))."""
    position = {frame: p for p, frame in enumerate(frame_indices)}
    tracks, full_boxes = [], []
    for frame, face in keys:
        p = position[frame]
        tracks.append(int(track_ids[p][face]))
        full_boxes.append(faces.scale_box(boxes[p][face], card.detector_downscale))
    return tracks, np.asarray(full_boxes, dtype=np.float32).reshape(-1, 4)


def people_of_video(name: str, probabilities: np.ndarray, keys: Sequence[tuple[int, int]], tracks: Sequence[int],
                    boxes: np.ndarray, card: ModelCard) -> list[dict]:
    """One row per track (PEOPLE_COLUMNS keys, `decided` 0); `probabilities` is (num_models, n) over the crops."""
    confident = dataclasses.replace(card, aggregation="confident")
    tracks = np.asarray(tracks, dtype=int)
    frames = np.asarray([frame for frame, _face in keys], dtype=int)
    people = []
    for track in sorted(set(tracks.tolist())):
        members = np.flatnonzero(tracks == track)
        median = np.median(boxes[members], axis=0)
        people.append({"filename": name, "track": track, "frames": len(set(frames[members].tolist())),
                       "first_frame": int(frames[members].min()), "last_frame": int(frames[members].max()),
                       "x1": float(median[0]), "y1": float(median[1]), "x2": float(median[2]),
                       "y2": float(median[3]),
                       "score": ku.ensemble_score(probabilities[:, members], confident), "decided": 0})
    return people


def video_score(probabilities: np.ndarray, people: list[dict], card: ModelCard) -> float:
    """The video's score by the card's aggregation; under per_person the deciding track gets `decided` 1.

    confident and mean go through `kernel_utils.ensemble_score` untouched (the winner's arithmetic)."""
    if card.aggregation != "per_person":
        return ku.ensemble_score(probabilities, card)
    eligible = [person for person in people if person["frames"] >= card.person_min_frames]
    if not eligible:
        return ku.ensemble_score(probabilities, dataclasses.replace(card, aggregation="confident"))
    decider = max(eligible, key=lambda person: person["score"])  # the first of equal highest scores
    decider["decided"] = 1
    return decider["score"]
