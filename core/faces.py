"""Face detection and the crop rule, shared by preprocessing and inference (one implementation of each)."""
from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import torch

# MTCNN thresholds of the three cascade stages, per use, as in the original.
DETECT_THRESHOLDS = (0.85, 0.95, 0.95)  # preprocessing: boxes of the REAL videos
LANDMARK_THRESHOLDS = (0.65, 0.75, 0.75)  # preprocessing: 5 landmarks on crops
INFERENCE_THRESHOLDS = (0.7, 0.8, 0.8)  # predict_folder / kernel_utils (the model card's default)
DETECTOR_DOWNSCALE = 2  # MTCNN sees half-size frames (core.video.half_size); boxes are scaled back by this
CROP_PAD_DIVISOR = 3  # the crop adds side // 3 on each side of the box


def make_mtcnn(thresholds: Sequence[float], device: torch.device | str = "cpu", core_cascade_on_cpu: bool = True):
    """facenet-pytorch MTCNN as the original configures it: every face, largest first, margin 0.

    On the CPU, `detect_batch` runs core.mtcnn's cascade instead of facenet-pytorch's code (bit-identical,
    faster); `core_cascade_on_cpu=False` keeps facenet-pytorch's own code, as benchmark baselines do. The choice
    is stored on the returned detector (`core_cascade`), so whoever builds the detector decides, in every process.
    The weights ship inside the facenet-pytorch wheel, so this works offline. torch is imported here, not at the
    top: extract_crops uses this module's crop rule and must not load torch (core.processes says why).
    """
    import torch
    from facenet_pytorch import MTCNN

    from core.mtcnn import use_strided_pools

    mtcnn = MTCNN(margin=0, thresholds=list(thresholds), keep_all=True, select_largest=True,
                  post_process=False, device=torch.device(device))
    mtcnn.core_cascade = core_cascade_on_cpu and mtcnn.device.type == "cpu"
    if mtcnn.core_cascade:
        use_strided_pools(mtcnn)
    return mtcnn


def _largest_first(boxes: np.ndarray, points: np.ndarray):
    """facenet-pytorch's `select_largest` order (its exact expression, so that ties fall the same way)."""
    order = np.argsort((boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1]))[::-1]
    return boxes[order], points[order]


def _detect(mtcnn, batch: np.ndarray):
    """Per frame (boxes (N, 4), points (N, 5, 2)) largest first, or None: core.mtcnn's exact, faster cascade
    on CPU, facenet-pytorch's own `detect` elsewhere."""
    if getattr(mtcnn, "core_cascade", False):
        from core.mtcnn import detect_faces

        return [_largest_first(boxes[:, :4], points) if len(boxes) else None
                for boxes, points in detect_faces(mtcnn, batch)]
    boxes, _probs, points = mtcnn.detect(batch, landmarks=True)
    return [None if frame_boxes is None else (frame_boxes, frame_points)
            for frame_boxes, frame_points in zip(boxes, points)]


def detect_batch(mtcnn, frames: Sequence[np.ndarray], landmarks: bool = False):
    """Run MTCNN on equally sized RGB frames in one call.

    Returns, per frame, a float array of boxes (N, 4) sorted largest first, or None if no face; with
    `landmarks=True` a (boxes, points (N, 5, 2)) pair per frame instead. facenet-pytorch returns object arrays
    under NumPy 2, hence the explicit float conversion. Frames with a side shorter than MTCNN's smallest face
    cannot hold one (facenet-pytorch would fail on its empty image pyramid): they get None.
    """
    if len(frames) == 0:
        return []
    if min(frames[0].shape[:2]) < mtcnn.min_face_size:
        return [None] * len(frames)
    results = []
    for found in _detect(mtcnn, np.stack(frames)):
        if found is None:
            results.append(None)
            continue
        frame_boxes = np.asarray(found[0], dtype=np.float64).reshape(-1, 4)
        if landmarks:
            results.append((frame_boxes, np.asarray(found[1], dtype=np.float64).reshape(-1, 5, 2)))
        else:
            results.append(frame_boxes)
    return results


def scale_box(box: Sequence[float], factor: float = DETECTOR_DOWNSCALE) -> tuple[int, int, int, int]:
    """Half-resolution detector box to full-resolution integer pixels (`int(b * 2)`, as the original)."""
    x1, y1, x2, y2 = (int(v * factor) for v in box)
    return x1, y1, x2, y2


def crop_face(frame: np.ndarray, box: Sequence[int], pad_divisor: int = CROP_PAD_DIVISOR) -> np.ndarray:
    """Crop a full-resolution face box with 1/3 of its width and height added on each side, clamped to the frame.

    The crop is not squared (as the original). Returns an empty array when the box lies outside the frame.
    """
    x1, y1, x2, y2 = (int(v) for v in box)
    pad_w, pad_h = (x2 - x1) // pad_divisor, (y2 - y1) // pad_divisor
    height, width = frame.shape[:2]
    top, bottom = max(y1 - pad_h, 0), min(y2 + pad_h, height)
    left, right = max(x1 - pad_w, 0), min(x2 + pad_w, width)
    return frame[top:bottom, left:right]


def box_in_crop(box: Sequence[int], pad_divisor: int = CROP_PAD_DIVISOR) -> tuple[int, int, int, int]:
    """The full-resolution face box in the coordinates of its `crop_face` crop (whose top-left is clamped at 0)."""
    x1, y1, x2, y2 = (int(v) for v in box)
    left, top = max(x1 - (x2 - x1) // pad_divisor, 0), max(y1 - (y2 - y1) // pad_divisor, 0)
    return x1 - left, y1 - top, x2 - left, y2 - top
