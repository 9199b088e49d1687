"""What the evidence report shows of one scored video, as rows: one per face crop, one per person (track).

`crop_rows` and `person_rows` are the only places that read a VideoResult's crop layout. Where the result carries
no person tracks (`crop_tracks`, `crop_boxes`, `people`), each face index stands for a person (the detector's
size order, so face 0 is the largest face of its frame), boxes are known only for the keyframes, and a
person's score is the winner's confident strategy over that index's ensemble-mean crop scores.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

import kernel_utils as ku
from core.card import ModelCard
from inference.pipeline import VideoResult


@dataclass(frozen=True)
class CropRow:
    position: int  # index into the result's crop lists (and crop_images)
    frame: int
    track: int
    box: tuple[float, float, float, float] | None  # full-frame pixels x1, y1, x2, y2; None when unknown
    score: float


@dataclass(frozen=True)
class PersonRow:
    track: int
    frames: int
    first_frame: int
    last_frame: int
    score: float
    decided: bool


def _keyframe_boxes(result: VideoResult) -> dict[tuple[int, int], tuple]:
    boxes = {}
    for keyframe in result.keyframes.frames if result.keyframes else []:
        for face, box in enumerate(keyframe.boxes):
            boxes[(keyframe.index, face)] = tuple(float(v) for v in box)
    return boxes


def crop_rows(result: VideoResult) -> list[CropRow]:
    """Every scored crop of the video: (frame, track, box, score)."""
    scores = [] if result.crop_scores is None else [float(s) for s in result.crop_scores]
    tracks = getattr(result, "crop_tracks", None)
    boxes = getattr(result, "crop_boxes", None)
    known_boxes = _keyframe_boxes(result) if boxes is None else {}
    rows = []
    for position, ((frame, face), score) in enumerate(zip(result.crop_keys, scores)):
        track = int(tracks[position]) if tracks else int(face)
        box = tuple(float(v) for v in boxes[position]) if boxes is not None else known_boxes.get((frame, face))
        rows.append(CropRow(position, int(frame), track, box, score))
    return rows


def person_rows(result: VideoResult, card: ModelCard) -> list[PersonRow]:
    """One row per person, largest track id last; `decided` marks the track that set the score, if one did."""
    people = getattr(result, "people", None)
    if people:
        return [PersonRow(int(p["track"]), int(p["frames"]), int(p["first_frame"]), int(p["last_frame"]),
                          float(p["score"]), bool(int(p["decided"]))) for p in people]
    by_track: dict[int, list[CropRow]] = {}
    for row in crop_rows(result):
        by_track.setdefault(row.track, []).append(row)
    rows = []
    for track, crops in sorted(by_track.items()):
        frames = sorted({c.frame for c in crops})
        score = ku.confident_strategy([c.score for c in crops], card.confident_threshold)
        rows.append(PersonRow(track, len(frames), frames[0], frames[-1], score, False))
    return rows


def aggregation_of(result: VideoResult, card: ModelCard) -> str:
    """The aggregation that produced the video's score."""
    return getattr(result, "aggregation", None) or card.aggregation


def top_crops(result: VideoResult, count: int) -> list[CropRow]:
    """The `count` most suspicious crops, highest score first (earlier frame first on ties)."""
    rows = crop_rows(result)
    order = np.lexsort(([r.frame for r in rows], [-r.score for r in rows])) if rows else []
    return [rows[i] for i in order[:count]]
