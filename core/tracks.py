"""Face tracks: the boxes of successive detection frames linked into people, for preprocessing and prediction.

Each frame's boxes are matched one-to-one to the live tracks (scipy's `linear_sum_assignment`) on a cost of
(1 - IoU) + centre distance / box side. A pair can match only when the boxes overlap by `min_iou`, or their centres
lie within `max_centre_shift` box sides of each other, and their sizes differ by less than `max_size_ratio`.
A track survives `max_gap` detection frames without a face; after that, or at a scene cut, the person starts a
new track. Tracks are numbered by first appearance, then by size (largest first, as the detector orders boxes).

Not handled: two faces that cross can swap ids (only position and size are compared, never appearance), and a
person who comes back after more than `max_gap` frames gets a new track (no re-identification).
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field

import cv2
import numpy as np
from scipy.optimize import linear_sum_assignment

_NO_MATCH = 1e6
_CUT_THUMBNAIL = 32  # side of the grey thumbnails compared to find scene cuts


@dataclass(frozen=True)
class TrackerSettings:
    min_iou: float  # boxes overlapping this much may be the same face ...
    max_centre_shift: float  # ... or whose centres lie within this many box sides of each other
    max_size_ratio: float  # larger/smaller box side above this: never the same face
    max_gap: int  # detection frames a track may miss before it ends
    cut_difference: float  # mean absolute grey difference (0-255) of 32 px thumbnails that marks a scene cut

    def to_dict(self) -> dict:
        return asdict(self)


# Every frame of a real video (preprocessing step 1): faces move little from one frame to the next.
PREPROCESSING_TRACKER = TrackerSettings(min_iou=0.3, max_centre_shift=0.5, max_size_ratio=1.5, max_gap=5,
                                        cut_difference=40.0)
# 32 sampled frames of a 300-frame video are ~9 frames apart: looser overlap and shift, a shorter gap in frames.
PREDICTION_TRACKER = TrackerSettings(min_iou=0.1, max_centre_shift=1.0, max_size_ratio=2.0, max_gap=2,
                                     cut_difference=40.0)


def tracker_for_stride(frame_stride: int) -> TrackerSettings:
    """Preprocessing's settings for boxes detected every `frame_stride` frames: the per-frame ones up to 3 frames
    apart, the sampled-frame ones (as prediction) beyond."""
    return PREPROCESSING_TRACKER if frame_stride <= 3 else PREDICTION_TRACKER


@dataclass
class TrackStats:
    """What the tracker met in one video (summed over videos for a run's summary)."""

    tracks: int = 0
    bridged_misses: int = 0  # frames without that face inside a track (gaps of at most max_gap)
    lost: int = 0  # tracks ended by a longer gap or a cut while the video went on
    cuts: int = 0  # scene cuts found
    crowded: int = 0  # videos (of those summed) with more than CROWDED tracks

    def add(self, other: TrackStats) -> None:
        for name in ("tracks", "bridged_misses", "lost", "cuts", "crowded"):
            setattr(self, name, getattr(self, name) + getattr(other, name))


CROWDED = 5  # "more than a handful of people": counted, still tracked


def _sides(boxes: np.ndarray) -> np.ndarray:
    return np.sqrt(np.maximum(boxes[:, 2] - boxes[:, 0], 1e-6) * np.maximum(boxes[:, 3] - boxes[:, 1], 1e-6))


def _iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    x1 = np.maximum(a[:, None, 0], b[None, :, 0])
    y1 = np.maximum(a[:, None, 1], b[None, :, 1])
    x2 = np.minimum(a[:, None, 2], b[None, :, 2])
    y2 = np.minimum(a[:, None, 3], b[None, :, 3])
    inter = np.clip(x2 - x1, 0, None) * np.clip(y2 - y1, 0, None)
    area_a = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    return inter / np.maximum(area_a[:, None] + area_b[None, :] - inter, 1e-6)


def match_cost(previous: np.ndarray, current: np.ndarray, settings: TrackerSettings) -> np.ndarray:
    """(len(previous), len(current)) costs; _NO_MATCH where the two boxes cannot be the same face."""
    iou = _iou(previous, current)
    side_prev, side_cur = _sides(previous), _sides(current)
    mean_side = (side_prev[:, None] + side_cur[None, :]) / 2
    centre_prev = (previous[:, :2] + previous[:, 2:4]) / 2
    centre_cur = (current[:, :2] + current[:, 2:4]) / 2
    shift = np.linalg.norm(centre_prev[:, None, :] - centre_cur[None, :, :], axis=2) / mean_side
    ratio = np.maximum(side_prev[:, None], side_cur[None, :]) / np.minimum(side_prev[:, None], side_cur[None, :])
    allowed = ((iou >= settings.min_iou) | (shift <= settings.max_centre_shift)) & (ratio <= settings.max_size_ratio)
    return np.where(allowed, (1 - iou) + shift, _NO_MATCH)


def _thumbnail(frame: np.ndarray) -> np.ndarray:
    grey = cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY) if frame.ndim == 3 else frame
    return cv2.resize(grey, (_CUT_THUMBNAIL, _CUT_THUMBNAIL), interpolation=cv2.INTER_AREA).astype(np.float32)


def scene_cuts(frames: Sequence[np.ndarray], settings: TrackerSettings) -> list[bool]:
    """Per frame, True where it starts a new shot (its thumbnail differs strongly from the previous frame's)."""
    cuts, previous = [], None
    for frame in frames:
        thumb = _thumbnail(np.asarray(frame))
        cuts.append(previous is not None and float(np.abs(thumb - previous).mean()) > settings.cut_difference)
        previous = thumb
    return cuts


@dataclass
class _Track:
    box: np.ndarray
    last_seen: int
    first_seen: int
    first_side: float
    members: list[tuple[int, int]] = field(default_factory=list)  # (frame position, box index)


def link_tracks(boxes_per_frame: Sequence, settings: TrackerSettings,
                cuts: Sequence[bool] | None = None) -> tuple[list[list[int] | None], TrackStats]:
    """Track id of every box, per frame (None where the frame has no box), and what the tracker met.

    `boxes_per_frame`: per detection frame, in time order, an (N, >=4) array-like of x1, y1, x2, y2 or None.
    `cuts`: per frame, True where a new shot starts (see `scene_cuts`); every track ends there.
    """
    stats = TrackStats()
    live: list[_Track] = []
    finished: list[_Track] = []
    for position, boxes in enumerate(boxes_per_frame):
        if cuts is not None and cuts[position]:
            stats.cuts += 1
            finished.extend(live)
            stats.lost += len(live)
            live = []
        expired = [t for t in live if position - t.last_seen > settings.max_gap]
        if expired:
            stats.lost += len(expired)
            finished.extend(expired)
            live = [t for t in live if position - t.last_seen <= settings.max_gap]
        if boxes is None or len(boxes) == 0:
            continue
        current = np.asarray(boxes, dtype=np.float64).reshape(len(boxes), -1)[:, :4]
        assigned: dict[int, _Track] = {}
        if live:
            cost = match_cost(np.stack([t.box for t in live]), current, settings)
            rows, cols = linear_sum_assignment(cost)
            for row, col in zip(rows, cols):
                if cost[row, col] < _NO_MATCH:
                    assigned[col] = live[row]
        for index, box in enumerate(current):
            track = assigned.get(index)
            if track is None:
                track = _Track(box=box, last_seen=position, first_seen=position, first_side=float(_sides(box[None])[0]))
                live.append(track)
            else:
                stats.bridged_misses += position - track.last_seen - 1
            track.box, track.last_seen = box, position
            track.members.append((position, index))
    tracks = finished + live
    tracks.sort(key=lambda t: (t.first_seen, -t.first_side))
    ids: list[list[int] | None] = [None if b is None or len(b) == 0 else [-1] * len(b) for b in boxes_per_frame]
    for number, track in enumerate(tracks):
        for position, index in track.members:
            ids[position][index] = number
    stats.tracks = len(tracks)
    stats.crowded = int(len(tracks) > CROWDED)
    return ids, stats

