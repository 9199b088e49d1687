"""The original's albumentations pipelines, ported to albumentations 2.x argument names.

albumentations 2 ignores unknown (1.x) argument names with only a UserWarning and falls back to its defaults,
so every argument here uses the 2.x name; tests/test_training_transforms.py checks the built objects.
"""
from __future__ import annotations

import math

import albumentations as A
import cv2
import numpy as np

from core.model_input import isotropic_resize

# GaussNoise: the original's 1.x default var_limit (10, 50) is a pixel variance on 0-255; 2.x wants std / 255.
GAUSS_NOISE_STD_RANGE = (math.sqrt(10) / 255, math.sqrt(50) / 255)
# GaussianBlur: 1.x blurred with sigma 0, i.e. OpenCV's fixed 3-tap kernel [1/4, 1/2, 1/4]; 2.x draws sigma from
# (0.5, 3) unless told. exp(-1 / (2 sigma^2)) = 1/2 gives exactly that kernel.
GAUSSIAN_BLUR_SIGMA = math.sqrt(0.5 / math.log(2))


class IsotropicResize(A.DualTransform):
    """Longer side to `max_side`; unlike the original, each instance uses its own interpolations.

    The mask (SSIM diff) is always resized with nearest-neighbour.
    """

    def __init__(self, max_side: int, interpolation_down: int = cv2.INTER_AREA,
                 interpolation_up: int = cv2.INTER_CUBIC, p: float = 1.0):
        super().__init__(p=p)
        self.max_side = max_side
        self.interpolation_down = interpolation_down
        self.interpolation_up = interpolation_up

    def apply(self, img: np.ndarray, **params) -> np.ndarray:
        return isotropic_resize(img, self.max_side, self.interpolation_down, self.interpolation_up)

    def apply_to_mask(self, mask: np.ndarray, **params) -> np.ndarray:
        return isotropic_resize(mask, self.max_side, cv2.INTER_NEAREST, cv2.INTER_NEAREST)

    def get_transform_init_args_names(self) -> tuple[str, ...]:
        return ("max_side", "interpolation_down", "interpolation_up")


def _pad(size: int) -> A.PadIfNeeded:
    return A.PadIfNeeded(min_height=size, min_width=size, border_mode=cv2.BORDER_CONSTANT, fill=0, fill_mask=0)


def create_train_transforms(size: int) -> A.Compose:
    """Train augmentations of the original (spec §3.6 step 6), image + mask jointly."""
    return A.Compose([
        A.ImageCompression(compression_type="jpeg", quality_range=(60, 100), p=0.5),
        A.GaussNoise(std_range=GAUSS_NOISE_STD_RANGE, mean_range=(0.0, 0.0), per_channel=True, p=0.1),
        # A 3x3 kernel as the original; 2.x turns blur_limit=3 into (0, 3), where 0 means "from sigma" (up to 19x19).
        A.GaussianBlur(blur_limit=(3, 3), sigma_limit=(GAUSSIAN_BLUR_SIGMA, GAUSSIAN_BLUR_SIGMA), p=0.05),
        A.HorizontalFlip(p=0.5),
        A.OneOf([
            IsotropicResize(size, interpolation_down=cv2.INTER_AREA, interpolation_up=cv2.INTER_CUBIC),
            IsotropicResize(size, interpolation_down=cv2.INTER_AREA, interpolation_up=cv2.INTER_LINEAR),
            IsotropicResize(size, interpolation_down=cv2.INTER_LINEAR, interpolation_up=cv2.INTER_LINEAR),
        ], p=1.0),
        _pad(size),
        A.OneOf([A.RandomBrightnessContrast(p=1.0), A.FancyPCA(p=1.0), A.HueSaturationValue(p=1.0)], p=0.7),
        A.ToGray(p=0.2),
        # ShiftScaleRotate(0.1, 0.2, 10, BORDER_CONSTANT) of 1.x, as the non-deprecated Affine; keep_ratio: one scale
        # for both axes as 1.x (Affine otherwise draws x and y scales independently and distorts the face).
        A.Affine(translate_percent=(-0.1, 0.1), scale=(0.8, 1.2), rotate=(-10, 10), keep_ratio=True,
                 border_mode=cv2.BORDER_CONSTANT, fill=0, fill_mask=0, p=0.5),
    ])


def create_val_transforms(size: int) -> A.Compose:
    """Validation: isotropic resize (AREA down / CUBIC up) and centred zero padding, nothing random."""
    return A.Compose([
        IsotropicResize(size, interpolation_down=cv2.INTER_AREA, interpolation_up=cv2.INTER_CUBIC),
        _pad(size),
    ])
