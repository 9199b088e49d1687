"""Inference building blocks: frame sampling, face crops, model input, per-model aggregation and the ensemble.

Each step is a plain function so that `predict_folder.py` (parallel, overlapped) and `bench/predict.py`'s
baseline (sequential, the original's order) run the very same arithmetic.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Sequence

import numpy as np
import torch

from core import faces
from core.card import RELEASE_CARD, ModelCard
from core.model_input import normalize_batch, to_model_input
from core.video import VideoReadError, decodable_frame_count, header_frame_count, iter_frames

FRAMES_PER_VIDEO = RELEASE_CARD.frames_per_video
CONFIDENT_THRESHOLD = RELEASE_CARD.confident_threshold


# ---------------------------------------------------------------- frames

@dataclass
class SampledFrames:
    """Full-resolution RGB frames of one video and their true frame indices."""

    indices: list[int]
    frames: Sequence[np.ndarray]  # (a stacked tensor while crossing from a worker to the main process)
    resampled: bool = False  # True when the header's frame count was wrong and sampling was redone


def sample_frame_indices(count: int, num_frames: int) -> list[int]:
    """Evenly spaced indices, endpoints included, truncated to int as the original; duplicates removed.

    A video shorter than `num_frames` therefore gives every frame once (the original's reader stopped after
    the first repeated index and returned a single frame).
    """
    if count <= 0:
        raise ValueError(f"frame count must be positive, got {count}")
    return sorted(set(np.linspace(0, count - 1, num_frames).astype(int).tolist()))


def _decode_indices(path, wanted: Sequence[int]) -> tuple[list[int], list[np.ndarray]]:
    """The wanted frames that decode, in one sequential pass: (their indices, the frames)."""
    indices, frames = [], []
    for index, frame in iter_frames(path, keep=set(wanted).__contains__):
        indices.append(index)
        frames.append(frame)
    return indices, frames


def read_sampled_frames(path, num_frames: int = FRAMES_PER_VIDEO) -> SampledFrames:
    """`num_frames` frames at `sample_frame_indices(header count)`, decoded in one sequential pass.

    Header frame counts can be wrong. When the header claims more frames than the stream holds (or none), a
    decoding pass counts the frames that do decode, the indices are re-sampled over them and another pass
    fetches them, so the 32 frames still span the whole video. A header that is too low simply samples the first
    `count` frames (as the original). Frames lost to corrupt packets in the middle are not replaced.
    Raises VideoReadError (naming the file) when nothing usable decodes.
    """
    count = header_frame_count(path)
    if count > 0:
        wanted = sample_frame_indices(count, num_frames)
        indices, frames = _decode_indices(path, wanted)
        if len(indices) == len(wanted):
            return SampledFrames(indices, frames)
        decodable = decodable_frame_count(path)
        if decodable >= count:  # the header is right; some frames in the middle are damaged
            if not frames:
                raise VideoReadError(f"{path}: none of the sampled frames could be decoded")
            return SampledFrames(indices, frames)
        count = decodable
    else:
        count = decodable_frame_count(path)
    indices, frames = _decode_indices(path, sample_frame_indices(count, num_frames))
    if not frames:
        raise VideoReadError(f"{path}: none of the sampled frames could be decoded")
    return SampledFrames(indices, frames, resampled=True)


# ---------------------------------------------------------------- faces

@dataclass
class FaceCrops:
    """Model-ready face crops of one video: uint8 (N, size, size, 3) and the (frame, face index) of each."""

    keys: list[tuple[int, int]]
    inputs: np.ndarray
    frames_without_face: int = 0


def detect_faces(mtcnn, half_frames: Sequence[np.ndarray], frames_per_call: int) -> list:
    """MTCNN boxes (half-resolution, largest first) or None, per frame, `frames_per_call` frames per call.

    One frame per call reproduces the original exactly; larger calls are much faster on a GPU but MTCNN's
    NMS can then keep a slightly different box when two candidates score almost equally.
    """
    boxes = []
    for start in range(0, len(half_frames), max(frames_per_call, 1)):
        boxes.extend(faces.detect_batch(mtcnn, half_frames[start:start + frames_per_call]))
    return boxes


def crop_faces(frames: SampledFrames, boxes_per_frame: Sequence, card: ModelCard = RELEASE_CARD) -> FaceCrops:
    """Every face of every frame, cropped from the full-resolution frame with the preprocessing crop rule and
    made into the card's model input."""
    size = card.input_size
    keys, inputs, without_face = [], [], 0
    for frame_index, frame, boxes in zip(frames.indices, frames.frames, boxes_per_frame):
        if boxes is None:
            without_face += 1
            continue
        for face_index, box in enumerate(boxes):
            crop = faces.crop_face(frame, faces.scale_box(box, card.detector_downscale), card.crop_pad_divisor)
            if crop.size == 0:
                continue  # a box entirely outside the frame
            keys.append((frame_index, face_index))
            inputs.append(to_model_input(crop, size))
    stacked = np.stack(inputs) if inputs else np.zeros((0, size, size, 3), np.uint8)
    return FaceCrops(keys, stacked, without_face)


# ---------------------------------------------------------------- classifier

def inference_model(model: torch.nn.Module, compile_model: bool = False) -> torch.nn.Module:
    """The classifier as prediction runs it: channels-last weights (the layout oneDNN and cuDNN convolve fastest;
    inputs already are, see `normalize_batch`; scores move by ~1e-7), and with `compile_model` wrapped in
    torch.compile, which compiles on the first call of each new batch shape (see predict_folder --compile)."""
    model = model.to(memory_format=torch.channels_last)
    return torch.compile(model) if compile_model else model


def compile_unavailable() -> str | None:
    """Why torch.compile cannot work here, or None: inductor builds C++ kernels on the CPU and Triton builds a C
    launcher on CUDA, both with the system compiler, which slim images (python:*-slim) do not have."""
    import shutil

    compiler = os.environ.get("CXX", "g++")
    if shutil.which(compiler) is None:
        return f"torch.compile needs a C/C++ compiler and {compiler!r} is not on PATH (apt-get install g++)"
    return None


@torch.inference_mode()
def predict_probabilities(models: Sequence[torch.nn.Module], inputs: np.ndarray, device: torch.device,
                          dtype: torch.dtype, batch_size: int, card: ModelCard = RELEASE_CARD) -> np.ndarray:
    """Sigmoid scores, float32 array (num_models, N); each chunk of `batch_size` crops is uploaded once."""
    probabilities = np.zeros((len(models), len(inputs)), dtype=np.float32)
    for start in range(0, len(inputs), batch_size):
        chunk = torch.from_numpy(np.ascontiguousarray(inputs[start:start + batch_size]))
        x = normalize_batch(chunk.to(device, non_blocking=True), dtype, card.mean, card.std)
        for m, model in enumerate(models):
            logits = model(x).float().flatten()
            probabilities[m, start:start + len(chunk)] = torch.sigmoid(logits).cpu().numpy()
    return probabilities


# ---------------------------------------------------------------- aggregation

def confident_strategy(pred, t: float = CONFIDENT_THRESHOLD) -> float:
    """The winner's per-video aggregation over all face crops of one model.

    Many confident fakes -> mean of those; almost all confidently real -> mean of those; else the plain mean.
    `sz // 2.5` is Python float floor division (32 -> 12.0), as the original. Works for a single face (the
    original crashed on it); raises ValueError for none (the caller reports "no face").
    """
    pred = np.asarray(pred, dtype=np.float64).reshape(-1)
    sz = len(pred)
    if sz == 0:
        raise ValueError("confident_strategy needs at least one face score")
    fakes = np.count_nonzero(pred > t)
    if fakes > sz // 2.5 and fakes > 11:
        return float(np.mean(pred[pred > t]))
    if np.count_nonzero(pred < 0.2) > 0.9 * sz:
        return float(np.mean(pred[pred < 0.2]))
    return float(np.mean(pred))


def aggregate(pred, card: ModelCard = RELEASE_CARD) -> float:
    """One model's video score from its face scores, by the card's aggregation."""
    if card.aggregation == "confident":
        return confident_strategy(pred, card.confident_threshold)
    if card.aggregation != "mean":
        raise ValueError(f"{card.aggregation} needs the faces' tracks: inference.people.video_score scores it")
    pred = np.asarray(pred, dtype=np.float64).reshape(-1)
    if len(pred) == 0:
        raise ValueError("aggregation needs at least one face score")
    return float(np.mean(pred))


def ensemble_score(probabilities: np.ndarray, card: ModelCard = RELEASE_CARD) -> float:
    """Arithmetic mean over models of each model's aggregated score; probabilities is (num_models, N)."""
    probabilities = np.asarray(probabilities)
    if probabilities.ndim != 2 or probabilities.shape[0] == 0:
        raise ValueError(f"expected (num_models, num_faces) scores, got shape {probabilities.shape}")
    return float(np.mean([aggregate(row, card) for row in probabilities]))
