"""A few sampled frames of a video kept, shrunk, for the evidence report (picked where the frames are at hand).

The pipeline drops a video's full frames once its faces are cropped; with `PredictionConfig.keyframes` > 0 it
first keeps this many of them, evenly spread over the sampled frames that hold a face (over all sampled frames
when none does). The boxes drawn on them are the crops' (VideoResult.crop_boxes).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from collections.abc import Sequence

import cv2
import numpy as np


KEYFRAME_WIDTH = 640  # pixels; enough to see who is where, small enough to pass between processes


@dataclass
class Keyframe:
    index: int  # the frame's true index in the video
    image: np.ndarray  # RGB uint8, at most KEYFRAME_WIDTH wide
    scale: float  # image pixels per full-frame pixel


@dataclass
class Keyframes:
    frames_sampled: int  # sampled frames that decoded
    resampled: bool  # the header's frame count was wrong and sampling was redone over the decodable frames
    frames: list[Keyframe] = field(default_factory=list)


def spread(items: Sequence, count: int) -> list:
    """`count` items evenly spread from first to last (all of them when there are fewer)."""
    if len(items) <= count:
        return list(items)
    picks = np.linspace(0, len(items) - 1, count).round().astype(int)
    return [items[i] for i in sorted(set(picks.tolist()))]


def shrink(image: np.ndarray, width: int = KEYFRAME_WIDTH) -> tuple[np.ndarray, float]:
    scale = min(1.0, width / image.shape[1])
    if scale == 1.0:
        return np.ascontiguousarray(image), 1.0
    size = (round(image.shape[1] * scale), round(image.shape[0] * scale))
    return cv2.resize(image, size, interpolation=cv2.INTER_AREA), scale


def pick_keyframes(sampled, boxes_per_frame: Sequence, count: int) -> Keyframes:
    """Keep `count` of the sampled frames (kernel_utils.SampledFrames), shrunk, preferring frames with a face."""
    with_face = [i for i, boxes in enumerate(boxes_per_frame) if boxes is not None]
    chosen = spread(with_face or list(range(len(sampled.indices))), count)
    kept = []
    for position in chosen:
        image, scale = shrink(sampled.frames[position])
        kept.append(Keyframe(int(sampled.indices[position]), image, scale))
    return Keyframes(len(sampled.indices), sampled.resampled, kept)
