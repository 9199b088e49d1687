"""Self-blended images (SBI; Shiohara & Yamasaki, CVPR 2022): a fake made from one real face crop.

Two copies of the crop: one is altered (colour, then a down-up scale or a sharpen), the source copy is shifted
and zoomed a little, and the source is pasted onto the target through a soft face mask. The mask is the convex
hull of the 68 landmarks in one of four shapes, elastically deformed, blurred with random kernels and scaled by a
blend ratio drawn from {0.25, 0.5, 0.75, 1, 1, 1}. A detector trained on real/blend pairs learns the traces any
face blend leaves (boundaries, colour and frequency mismatches) rather than one generator's artefacts.

Parameters follow the paper and its reference implementation; everything draws from the numpy Generator passed
in, so a test can replay it. Images are HxWx3 uint8 RGB; landmarks (68, 2) x, y in the image's pixels.
"""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

BLEND_RATIOS = (0.25, 0.5, 0.75, 1.0, 1.0, 1.0)

# dlib 68-point index ranges.
JAW = range(0, 17)
BROWS = range(17, 27)
NOSE = range(27, 36)
EYES = range(36, 48)
MOUTH = range(48, 68)
HULL_VARIANTS = ("face", "extended", "components", "lower")

# Source-target augmentation (applied to one copy): colour, then one of down-up scale or sharpen.
RGB_SHIFT_LIMIT, RGB_SHIFT_P = 20, 0.3
# The reference code's hue/sat/value limits (+-0.3 in albumentations 1.x uint8 units) shift by less than one level;
# these small shifts are ours, in OpenCV units (hue 0-180, saturation and value 0-255).
HUE_SHIFT, SAT_SHIFT, VAL_SHIFT = 3, 8, 8
BRIGHTNESS_LIMIT, CONTRAST_LIMIT = 0.1, 0.1
DOWNSCALE_FACTORS = (2, 4)
SHARPEN_ALPHA, SHARPEN_LIGHTNESS = (0.2, 0.5), (0.5, 1.0)
# Source affine: shift up to 3 % of the width and 1.5 % of the height, zoom 0.95 to 1/0.95.
SHIFT_X, SHIFT_Y, ZOOM = 0.03, 0.015, (0.95, 1 / 0.95)
# Mask deformation (elastic, as albumentations' ElasticTransform(alpha=50, sigma=7)) and blur.
ELASTIC_ALPHA, ELASTIC_SIGMA = 50.0, 7.0
MASK_WORK_SIDE = (192, 257)  # the mask is blurred at a random size in this range (per side), then resized back
BLUR_KERNELS = tuple(range(5, 26, 2))
SECOND_BLUR_SIGMA = (5, 46)


@dataclass(frozen=True)
class SBIOptions:
    """Switches for tests and ablations; the defaults are the method."""

    augment: bool = True  # source-target colour/frequency augmentation and source affine
    deform: bool = True  # elastic mask deformation and random blur (False: the hard hull mask)
    ratios: tuple[float, ...] = BLEND_RATIOS
    variants: tuple[str, ...] = HULL_VARIANTS

    @classmethod
    def from_config(cls, section: dict) -> SBIOptions:
        """From a training config's checked "sbi" section (training/tools/config.py)."""
        return cls(deform=section["deform"], ratios=tuple(float(r) for r in section["blend_ratios"]),
                   variants=tuple(section["masks"]))


PAPER = SBIOptions()  # the method as published


# ---------------------------------------------------------------- mask

def _fill_hull(mask: np.ndarray, points: np.ndarray) -> None:
    cv2.fillConvexPoly(mask, cv2.convexHull(np.round(points).astype(np.int32)), 1)


def hull_mask(shape: tuple[int, int], landmarks: np.ndarray, variant: str = "face") -> np.ndarray:
    """uint8 0/1 mask of the face from its 68 points.

    face: hull of all points; extended: brows raised by a third of the brow-to-chin height (forehead);
    components: separate hulls of eyes with brows, nose, mouth; lower: jaw and nose (below the eyes).
    """
    points = np.asarray(landmarks, dtype=np.float64)
    mask = np.zeros(shape[:2], dtype=np.uint8)
    if variant == "face":
        _fill_hull(mask, points)
    elif variant == "extended":
        raised = points.copy()
        lift = (points[JAW, 1].max() - points[BROWS, 1].min()) / 3
        raised[list(BROWS), 1] -= lift
        _fill_hull(mask, raised)
    elif variant == "components":
        for part in (list(EYES) + list(BROWS), list(NOSE), list(MOUTH)):
            _fill_hull(mask, points[part])
    elif variant == "lower":
        _fill_hull(mask, points[list(JAW) + list(NOSE)])
    else:
        raise ValueError(f"unknown hull variant {variant!r}; known: {', '.join(HULL_VARIANTS)}")
    return mask


def elastic_deform(mask: np.ndarray, rng: np.random.Generator, alpha: float = ELASTIC_ALPHA,
                   sigma: float = ELASTIC_SIGMA) -> np.ndarray:
    """Move every pixel by a smooth random field: uniform noise in [-1, 1], Gaussian-smoothed, times alpha."""
    height, width = mask.shape[:2]
    size = int(2 * round(3 * sigma) + 1)
    dx, dy = (cv2.GaussianBlur(rng.uniform(-1, 1, (height, width)).astype(np.float32), (size, size), sigma) * alpha
              for _ in range(2))
    grid_x, grid_y = np.meshgrid(np.arange(width, dtype=np.float32), np.arange(height, dtype=np.float32))
    return cv2.remap(mask.astype(np.float32), grid_x + dx, grid_y + dy, cv2.INTER_LINEAR,
                     borderMode=cv2.BORDER_CONSTANT, borderValue=0)


def soften_mask(mask: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Float mask in [0, 1]: at a random working size, blur, keep the fully inside part (shrinks the mask by the
    kernel), blur again with a random kernel and sigma, then back to the original size."""
    height, width = mask.shape[:2]
    work_h, work_w = (int(v) for v in rng.integers(*MASK_WORK_SIDE, size=2))
    work = cv2.resize(mask.astype(np.float32), (work_w, work_h), interpolation=cv2.INTER_LINEAR)
    first, second = (int(rng.choice(BLUR_KERNELS)) for _ in range(2))
    blurred = cv2.GaussianBlur(work, (first, first), 0)
    if blurred.max() <= 0:
        return mask.astype(np.float32)
    core = (blurred / blurred.max() >= 0.999).astype(np.float32)
    if not core.any():  # a face too small for the kernel: keep the blurred shape
        core = blurred / blurred.max()
    soft = cv2.GaussianBlur(core, (second, second), float(rng.integers(*SECOND_BLUR_SIGMA)))
    soft /= soft.max()
    return np.clip(cv2.resize(soft, (width, height), interpolation=cv2.INTER_LINEAR), 0, 1)


# ---------------------------------------------------------------- source-target augmentation

def colour_jitter(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """RGB shift (p 0.3), then hue/saturation/value shift, then brightness/contrast."""
    out = image.astype(np.float32)
    if rng.random() < RGB_SHIFT_P:
        out += rng.uniform(-RGB_SHIFT_LIMIT, RGB_SHIFT_LIMIT, 3).astype(np.float32)
    hsv = cv2.cvtColor(np.clip(out, 0, 255).astype(np.uint8), cv2.COLOR_RGB2HSV).astype(np.float32)
    hsv[..., 0] = np.mod(hsv[..., 0] + rng.uniform(-HUE_SHIFT, HUE_SHIFT), 180)
    hsv[..., 1] += rng.uniform(-SAT_SHIFT, SAT_SHIFT)
    hsv[..., 2] += rng.uniform(-VAL_SHIFT, VAL_SHIFT)
    out = cv2.cvtColor(np.clip(hsv, 0, 255).astype(np.uint8), cv2.COLOR_HSV2RGB).astype(np.float32)
    contrast = 1 + rng.uniform(-CONTRAST_LIMIT, CONTRAST_LIMIT)
    brightness = rng.uniform(-BRIGHTNESS_LIMIT, BRIGHTNESS_LIMIT) * 255
    return np.clip(out * contrast + brightness, 0, 255).astype(np.uint8)


def down_up_scale(image: np.ndarray, factor: int) -> np.ndarray:
    height, width = image.shape[:2]
    small = cv2.resize(image, (max(width // factor, 1), max(height // factor, 1)), interpolation=cv2.INTER_NEAREST)
    return cv2.resize(small, (width, height), interpolation=cv2.INTER_LINEAR)


def sharpen(image: np.ndarray, alpha: float, lightness: float) -> np.ndarray:
    """Mix of the identity and a Laplacian-like kernel with centre 8 + lightness (albumentations' Sharpen)."""
    identity = np.zeros((3, 3), dtype=np.float32)
    identity[1, 1] = 1
    effect = -np.ones((3, 3), dtype=np.float32)
    effect[1, 1] = 8 + lightness
    kernel = (1 - alpha) * identity + alpha * effect
    return np.clip(cv2.filter2D(image.astype(np.float32), -1, kernel), 0, 255).astype(np.uint8)


def source_target_augment(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Colour jitter, then a down-up scale (factor 2 or 4) or a sharpen, each with probability 1/2."""
    out = colour_jitter(image, rng)
    if rng.random() < 0.5:
        return down_up_scale(out, int(rng.choice(DOWNSCALE_FACTORS)))
    return sharpen(out, rng.uniform(*SHARPEN_ALPHA), rng.uniform(*SHARPEN_LIGHTNESS))


def random_affine(image: np.ndarray, mask: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """The same small shift and zoom about the centre for the source image and its mask."""
    height, width = image.shape[:2]
    zoom = rng.uniform(*ZOOM)
    shift_x, shift_y = rng.uniform(-SHIFT_X, SHIFT_X) * width, rng.uniform(-SHIFT_Y, SHIFT_Y) * height
    matrix = cv2.getRotationMatrix2D((width / 2, height / 2), 0, zoom)
    matrix[:, 2] += (shift_x, shift_y)
    moved = cv2.warpAffine(image, matrix, (width, height), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
    moved_mask = cv2.warpAffine(mask.astype(np.float32), matrix, (width, height), flags=cv2.INTER_LINEAR,
                                borderMode=cv2.BORDER_CONSTANT, borderValue=0)
    return moved, moved_mask


# ---------------------------------------------------------------- blend

def blend(source: np.ndarray, target: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """mask * source + (1 - mask) * target, rounded to uint8; mask HxW float in [0, 1]."""
    weight = np.asarray(mask, dtype=np.float32)[..., None]
    mixed = weight * source.astype(np.float32) + (1 - weight) * target.astype(np.float32)
    return np.clip(np.rint(mixed), 0, 255).astype(np.uint8)


def self_blend(image: np.ndarray, landmarks: np.ndarray, rng: np.random.Generator,
               options: SBIOptions = PAPER) -> tuple[np.ndarray, np.ndarray]:
    """(the self-blended fake, the blend weight mask actually used, HxW float in [0, 1])."""
    mask = hull_mask(image.shape, landmarks, options.variants[int(rng.integers(len(options.variants)))])
    source, target = image.copy(), image.copy()
    if options.augment:
        if rng.random() < 0.5:
            source = source_target_augment(source, rng)
        else:
            target = source_target_augment(target, rng)
        source, mask = random_affine(source, mask, rng)
    mask = mask.astype(np.float32)
    if options.deform:
        mask = soften_mask(elastic_deform(mask, rng), rng)
    mask = mask * options.ratios[int(rng.integers(len(options.ratios)))]
    return blend(source, target, mask), mask
