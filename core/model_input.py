"""Model input of a face crop: isotropic resize, centred zero padding and normalisation.

Plain OpenCV/NumPy/torch so that inference can import it without albumentations. Validation in training
(`albu.create_val_transforms`) produces exactly `to_model_input(crop, size)`; the mean and std come from the
model card (`core.card`), whose defaults are these ImageNet values.
"""
from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np
import torch

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def isotropic_resize(image: np.ndarray, size: int, interpolation_down: int = cv2.INTER_AREA,
                     interpolation_up: int = cv2.INTER_CUBIC) -> np.ndarray:
    """Scale so that the longer side becomes `size` (the shorter side is truncated with int()).

    `interpolation_up` is used when the image grows, `interpolation_down` otherwise.
    """
    height, width = image.shape[:2]
    if max(height, width) == size:
        return image
    scale = size / max(height, width)
    if width > height:
        new_width, new_height = size, int(height * scale)
    else:
        new_width, new_height = int(width * scale), size
    interpolation = interpolation_up if scale > 1 else interpolation_down
    return cv2.resize(image, (max(new_width, 1), max(new_height, 1)), interpolation=interpolation)


def put_to_center(image: np.ndarray, size: int) -> np.ndarray:
    """Zero-pad to size x size with the image centred (top/left pad = (size - side) // 2, as PadIfNeeded)."""
    image = image[:size, :size]
    height, width = image.shape[:2]
    canvas = np.zeros((size, size) + image.shape[2:], dtype=image.dtype)
    top, left = (size - height) // 2, (size - width) // 2
    canvas[top:top + height, left:left + width] = image
    return canvas


def image_to_tensor(image: np.ndarray, mean: Sequence[float] = IMAGENET_MEAN,
                    std: Sequence[float] = IMAGENET_STD) -> torch.Tensor:
    """HWC uint8 RGB -> CHW float32 tensor, scaled to [0, 1] then normalised per channel."""
    array = image.astype(np.float32) / 255.0
    array = (array - np.asarray(mean, dtype=np.float32)) / np.asarray(std, dtype=np.float32)
    return torch.from_numpy(np.ascontiguousarray(array.transpose(2, 0, 1)))


def to_model_input(crop: np.ndarray, size: int) -> np.ndarray:
    """Isotropic resize to `size` on the long side, centred on a black size x size canvas (as validation)."""
    return put_to_center(isotropic_resize(crop, size), size)


def normalize_batch(images: torch.Tensor, dtype: torch.dtype, mean: Sequence[float] = IMAGENET_MEAN,
                    std: Sequence[float] = IMAGENET_STD) -> torch.Tensor:
    """uint8 NHWC -> normalised NCHW in `dtype`, channels-last in memory (no copy of the layout); the same
    arithmetic as `image_to_tensor`, batched on the device."""
    mean_t = torch.tensor(mean, device=images.device).view(1, 3, 1, 1)
    std_t = torch.tensor(std, device=images.device).view(1, 3, 1, 1)
    x = images.permute(0, 3, 1, 2).float().div_(255.0)
    x = (x - mean_t) / std_t
    return x.to(dtype).contiguous(memory_format=torch.channels_last)
