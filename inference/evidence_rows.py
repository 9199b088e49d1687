"""What the evidence report shows of one scored video, as rows: one per face crop, one per person (track).

The person tracks, boxes and per-person scores are the prediction's own (VideoResult.crop_tracks, crop_boxes,
people; inference/people.py); this module only arranges them for the pages.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from inference.pipeline import VideoResult


@dataclass(frozen=True)
class CropRow:
    position: int  # index into the result's crop lists (and crop_images)
    frame: int
    track: int
    box: tuple[float, float, float, float]  # full-frame pixels x1, y1, x2, y2
    score: float


@dataclass(frozen=True)
class PersonRow:
    track: int
    frames: int
    first_frame: int
    last_frame: int
    score: float
    decided: bool


def crop_rows(result: VideoResult) -> list[CropRow]:
    """Every scored crop of the video: (frame, track, box, score)."""
    if result.crop_scores is None or len(result.crop_scores) == 0:
        return []
    scores = [float(s) for s in result.crop_scores]
    return [CropRow(position, int(frame), int(track), tuple(float(v) for v in box), score)
            for position, ((frame, _face), track, box, score)
            in enumerate(zip(result.crop_keys, result.crop_tracks, result.crop_boxes, scores))]


def person_rows(result: VideoResult) -> list[PersonRow]:
    """One row per person, in track order; `decided` marks the track that set the score under per_person."""
    return [PersonRow(int(p["track"]), int(p["frames"]), int(p["first_frame"]), int(p["last_frame"]),
                      float(p["score"]), bool(int(p["decided"]))) for p in result.people]


def top_crops(result: VideoResult, count: int) -> list[CropRow]:
    """The `count` most suspicious crops, highest score first (earlier frame first on ties)."""
    rows = crop_rows(result)
    order = np.lexsort(([r.frame for r in rows], [-r.score for r in rows])) if rows else []
    return [rows[i] for i in order[:count]]
