"""The original's "hardcore" drop-out augmentations, applied at crop resolution before albumentations.

All functions modify `image` (HxWx3 uint8) in place and draw their random numbers from the `rng` passed in
(a numpy Generator), so a test can replay them.
"""
from __future__ import annotations

import cv2
import numpy as np
from scipy.ndimage import binary_dilation, generate_binary_structure

from core.landmarks68 import landmarks_68

# MTCNN 5-point order of landmarks/<original>/<frame>_<actor>.npy (x, y in crop pixels).
LEFT_EYE, RIGHT_EYE, NOSE, MOUTH_LEFT, MOUTH_RIGHT = range(5)
DILATION_CROSS = generate_binary_structure(2, 1)

# Probabilities of the original's chain: landmark removal, else half-face hull, else bit-mask drop-out.
LANDMARK_REMOVAL_P = 0.7
CONVEX_HULL_P = 0.2
BIT_MASK_P = 0.1
BIT_MASK_TRIES = 5
MIN_CHANGED_PIXELS = 20  # a fake's bit mask must keep more than this many changed (diff) pixels


def _blackout_line(image: np.ndarray, start, end, iterations: int) -> None:
    """Zero a 2-px line from start to end, grown by `iterations` steps of a 3x3-cross dilation."""
    line = np.zeros(image.shape[:2], dtype=np.uint8)
    cv2.line(line, tuple(int(v) for v in start), tuple(int(v) for v in end), 1, thickness=2)
    # scipy repeats until nothing changes for iterations < 1 (the whole image): at least one step.
    region = binary_dilation(line, structure=DILATION_CROSS, iterations=max(int(iterations), 1))
    image[region] = 0


def remove_landmark(image: np.ndarray, landmarks: np.ndarray, rng: np.random.Generator) -> str:
    """Black out the eyes (p 0.5), else the mouth (0.25), else the nose (0.125), else nothing; returns which."""
    points = np.asarray(landmarks, dtype=np.float64)
    eye_distance = np.linalg.norm(points[LEFT_EYE] - points[RIGHT_EYE])
    if rng.random() > 0.5:
        _blackout_line(image, points[LEFT_EYE], points[RIGHT_EYE], int(eye_distance // 4))
        return "eyes"
    if rng.random() > 0.5:
        mouth_width = np.linalg.norm(points[MOUTH_LEFT] - points[MOUTH_RIGHT])
        _blackout_line(image, points[MOUTH_LEFT], points[MOUTH_RIGHT], int(mouth_width // 3))
        return "mouth"
    if rng.random() > 0.5:
        eyes_middle = (points[LEFT_EYE] + points[RIGHT_EYE]) / 2
        _blackout_line(image, points[NOSE], eyes_middle, int(eye_distance // 4))
        return "nose"
    return "none"


def face_outline_68(image: np.ndarray) -> np.ndarray | None:
    """Jaw points 0-16 then brows 26 down to 17 of the first dlib face, as (N, 2) int32 x, y; None without a face."""
    points = landmarks_68(image)
    if points is None:
        return None
    return points[list(range(0, 17)) + list(range(26, 16, -1))]


def blackout_hull_half(image: np.ndarray, outline: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Zero one half (split vertically or horizontally at the centroid, side at random) of the outline's hull.

    Returns the boolean region that was zeroed.
    """
    hull = np.zeros(image.shape[:2], dtype=np.uint8)
    cv2.fillConvexPoly(hull, cv2.convexHull(outline.astype(np.int32)), 1)
    ys, xs = np.nonzero(hull)
    if len(ys) == 0:
        return hull.astype(bool)
    center_y, center_x = int(ys.mean()), int(xs.mean())
    half = np.zeros_like(hull)
    vertical_split, first_side = rng.random() < 0.5, rng.random() < 0.5
    if vertical_split:
        columns = slice(None, center_x) if first_side else slice(center_x, None)
        half[:, columns] = 1
    else:
        rows = slice(None, center_y) if first_side else slice(center_y, None)
        half[rows, :] = 1
    region = (hull & half).astype(bool)
    image[region] = 0
    return region


def blackout_convex_hull(image: np.ndarray, rng: np.random.Generator) -> bool:
    """Half-face blackout from dlib's 68 landmarks; False (image unchanged) when dlib finds no face."""
    outline = face_outline_68(image)
    if outline is None:
        return False
    blackout_hull_half(image, outline, rng)
    return True


def bit_masks(height: int, width: int) -> list[np.ndarray]:
    """Six uint8 keep-masks: top, bottom, left, right half zeroed, and the two diagonal-quadrant checkerboards.

    The original took the vertical midpoint from the width; here it comes from the height.
    """
    mid_h, mid_w = height // 2, width // 2
    masks = [np.ones((height, width), dtype=np.uint8) for _ in range(6)]
    masks[0][:mid_h, :] = 0
    masks[1][mid_h:, :] = 0
    masks[2][:, :mid_w] = 0
    masks[3][:, mid_w:] = 0
    masks[4][:mid_h, :mid_w] = 0
    masks[4][mid_h:, mid_w:] = 0
    masks[5][:mid_h, mid_w:] = 0
    masks[5][mid_h:, :mid_w] = 0
    return masks


def blackout_bit_mask(image: np.ndarray, diff: np.ndarray, label: float, rng: np.random.Generator) -> bool:
    """Zero a random bit mask (image and diff, in place); a fake's mask must keep > 20 changed pixels.

    Up to 5 tries; returns whether a mask was applied.
    """
    masks = bit_masks(*image.shape[:2])
    for _ in range(BIT_MASK_TRIES):
        mask = masks[int(rng.integers(len(masks)))]
        if label < 0.5 or np.count_nonzero(diff * mask) > MIN_CHANGED_PIXELS:
            image *= mask[..., None]
            diff *= mask
            return True
    return False


def hardcore_cutout(image: np.ndarray, diff: np.ndarray, landmarks: np.ndarray | None, label: float,
                    rng: np.random.Generator) -> str:
    """The original's chain; every test draws a fresh random number. Returns what was applied (for tests/stats)."""
    if landmarks is not None and rng.random() < LANDMARK_REMOVAL_P:
        return "landmark:" + remove_landmark(image, landmarks, rng)
    if rng.random() < CONVEX_HULL_P:
        return "hull" if blackout_convex_hull(image, rng) else "hull:no-face"
    if rng.random() < BIT_MASK_P:
        return "bitmask" if blackout_bit_mask(image, diff, label, rng) else "bitmask:rejected"
    return "none"
