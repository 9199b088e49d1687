"""Scoring many videos with decoding (and CPU face detection) in worker processes, overlapped with the model.

Workers run `prepare_video` on one video each: decode the sampled frames, halve them, and, when the detector
runs on the CPU, detect and crop as well (one single-threaded MTCNN per worker, so videos are detected in
parallel). With a GPU detector the worker returns the frames and the main process detects on the GPU.
The main process only runs what needs the accelerator, while the workers prepare the next videos.
"""
from __future__ import annotations

import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from collections.abc import Iterator, Sequence

import cv2
import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset
from tqdm import tqdm

import kernel_utils as ku
from core import faces
from core.card import RELEASE_CARD, ModelCard
from core.video import VideoReadError, half_size
from inference import people as people_
from inference.keyframes import Keyframes, pick_keyframes

UNREADABLE = "unreadable"
NO_FACE = "no face"


@dataclass(frozen=True)
class PredictionConfig:
    card: ModelCard = RELEASE_CARD  # input size, normalisation, frames, detector, crop rule and aggregation
    device: torch.device = torch.device("cpu")
    detector_device: torch.device = torch.device("cpu")
    dtype: torch.dtype = torch.float32
    batch_size: int = 64  # crops per classifier call
    frames_per_detector_call: int = 1
    workers: int = 0
    detect_in_workers: bool = True  # False: workers only decode, the main process detects (a GPU detector)
    core_cascade_on_cpu: bool = True  # False: facenet-pytorch's own MTCNN code on the CPU too (core.faces.make_mtcnn)
    keyframes: int = 0  # frames kept (shrunk, with their boxes) per video for the evidence report


@dataclass
class PreparedVideo:
    """What a worker hands back: crops (CPU detector), or frames to detect in the main process, or an error."""

    path: Path
    frames: ku.SampledFrames | None = None
    half_frames: Sequence[np.ndarray] | torch.Tensor | None = None  # a tensor while crossing processes
    crops: ku.FaceCrops | None = None
    keyframes: Keyframes | None = None
    crop_tracks: list[int] = field(default_factory=list)  # parallel to crops.keys
    crop_boxes: np.ndarray | None = None  # (n, 4) full-frame face boxes of the crops
    error: str | None = None
    seconds: dict[str, float] = field(default_factory=dict)


@dataclass
class VideoResult:
    name: str
    score: float | None  # None when the video could not be scored
    failure: str | None = None  # UNREADABLE or NO_FACE
    reason: str | None = None
    crop_keys: list[tuple[int, int]] = field(default_factory=list)
    crop_scores: np.ndarray | None = None  # ensemble mean of the sigmoid per crop
    crop_images: np.ndarray | None = None  # model inputs, only kept when thumbnails are wanted
    keyframes: Keyframes | None = None  # only kept for the evidence report (PredictionConfig.keyframes)
    crop_tracks: list[int] = field(default_factory=list)  # person (track) id of each crop, see core/tracks.py
    crop_boxes: np.ndarray | None = None  # (n, 4) float32 face box of each crop, full-frame pixels
    people: list[dict] = field(default_factory=list)  # one row per track, inference.people.PEOPLE_COLUMNS
    aggregation: str = "confident"  # the aggregation that produced `score`
    seconds: dict[str, float] = field(default_factory=dict)

    def rename(self, name: str) -> None:
        """Name the video (and its people rows) as the output rows name it."""
        self.name = name
        for person in self.people:
            person["filename"] = name


_worker_mtcnn = None


def _make_mtcnn(config: PredictionConfig):
    return faces.make_mtcnn(config.card.detector_thresholds, config.detector_device, config.core_cascade_on_cpu)


def _mtcnn_for_this_process(config: PredictionConfig):
    global _worker_mtcnn
    if _worker_mtcnn is None:
        _worker_mtcnn = _make_mtcnn(config)
    return _worker_mtcnn


def _stacked(frames) -> torch.Tensor:
    """One uint8 tensor for a video's frames: it crosses from a worker through shared memory, not a pipe."""
    return torch.from_numpy(np.stack(frames))


def _as_arrays(frames) -> Sequence[np.ndarray]:
    return frames.numpy() if isinstance(frames, torch.Tensor) else frames


def detect_and_crop(prepared: PreparedVideo, mtcnn, config: PredictionConfig) -> PreparedVideo:
    started = time.perf_counter()
    prepared.frames.frames = _as_arrays(prepared.frames.frames)
    prepared.half_frames = _as_arrays(prepared.half_frames)
    boxes = ku.detect_faces(mtcnn, prepared.half_frames, config.frames_per_detector_call)
    detected = time.perf_counter()
    prepared.crops = ku.crop_faces(prepared.frames, boxes, config.card)
    track_ids, _stats = people_.track_faces(prepared.half_frames, boxes, config.card)
    prepared.crop_tracks, prepared.crop_boxes = people_.crop_tracks_and_boxes(
        prepared.crops.keys, prepared.frames.indices, boxes, track_ids, config.card)
    if config.keyframes:
        prepared.keyframes = pick_keyframes(prepared.frames, boxes, config.keyframes)
    prepared.seconds["detect"] = detected - started
    prepared.seconds["crop"] = time.perf_counter() - detected
    prepared.frames = prepared.half_frames = None  # no need to ship full frames back
    return prepared


def prepare_video(path: Path, config: PredictionConfig) -> PreparedVideo:
    """Decode (and, with a CPU detector, detect and crop) one video; a VideoReadError becomes an error record."""
    prepared = PreparedVideo(path=Path(path))
    started = time.perf_counter()
    try:
        prepared.frames = ku.read_sampled_frames(path, config.card.frames_per_video)
    except VideoReadError as err:
        prepared.error = str(err)
        return prepared
    decoded = time.perf_counter()
    prepared.half_frames = [half_size(frame) for frame in prepared.frames.frames]
    prepared.seconds["decode"] = decoded - started
    prepared.seconds["resize"] = time.perf_counter() - decoded
    if config.detect_in_workers:
        detect_and_crop(prepared, _mtcnn_for_this_process(config), config)
    else:
        prepared.frames.frames, prepared.half_frames = _stacked(prepared.frames.frames), _stacked(prepared.half_frames)
    return prepared


class _VideoDataset(Dataset):
    def __init__(self, paths: Sequence[Path], config: PredictionConfig):
        self.paths, self.config = list(paths), config

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int) -> PreparedVideo:
        return prepare_video(self.paths[index], self.config)


def _as_is(item):
    return item


def _init_worker(_worker_id: int) -> None:
    cv2.setNumThreads(1)  # torch is already limited to one thread per DataLoader worker


def score_prepared(prepared: PreparedVideo, models: Sequence[torch.nn.Module], config: PredictionConfig,
                   keep_images: bool = False) -> VideoResult:
    """Classify the crops of one prepared video and aggregate them (by default the confident strategy per model,
    then the mean; see inference/people.py for per_person and the per-track scores)."""
    name, aggregation = prepared.path.name, config.card.aggregation
    if prepared.error is not None:
        return VideoResult(name, None, UNREADABLE, prepared.error, aggregation=aggregation, seconds=prepared.seconds)
    crops = prepared.crops
    if len(crops.keys) == 0:
        reason = f"no face found in {len(prepared.frames.indices) if prepared.frames else crops.frames_without_face}" \
                 f" sampled frames"
        return VideoResult(name, None, NO_FACE, reason, aggregation=aggregation, keyframes=prepared.keyframes,
                           seconds=prepared.seconds)
    started = time.perf_counter()
    probabilities = ku.predict_probabilities(models, crops.inputs, config.device, config.dtype, config.batch_size,
                                             config.card)
    people = people_.people_of_video(name, probabilities, crops.keys, prepared.crop_tracks, prepared.crop_boxes,
                                     config.card)
    score = people_.video_score(probabilities, people, config.card)
    prepared.seconds["classify"] = time.perf_counter() - started
    return VideoResult(name, score, crop_keys=crops.keys, crop_scores=probabilities.mean(axis=0),
                       crop_images=crops.inputs if keep_images else None, crop_tracks=prepared.crop_tracks,
                       crop_boxes=prepared.crop_boxes, people=people, aggregation=aggregation,
                       keyframes=prepared.keyframes, seconds=prepared.seconds)


def predict_videos(paths: Sequence[Path], models: Sequence[torch.nn.Module], config: PredictionConfig,
                   keep_images: bool = False, progress: bool = True) -> Iterator[VideoResult]:
    """Yield one VideoResult per path, in order."""
    loader = DataLoader(_VideoDataset(paths, config), batch_size=None, num_workers=config.workers,
                        collate_fn=_as_is, worker_init_fn=_init_worker if config.workers else None,
                        prefetch_factor=2 if config.workers else None)
    mtcnn = None if config.detect_in_workers else _make_mtcnn(config)
    for prepared in tqdm(loader, total=len(paths), desc="videos", disable=not progress):
        if prepared.error is None and prepared.crops is None:
            detect_and_crop(prepared, mtcnn, config)
        yield score_prepared(prepared, models, config, keep_images)


def stage_seconds(results: Sequence[VideoResult]) -> dict[str, float]:
    """Summed seconds per stage over all videos (stages in workers overlap each other and the model)."""
    total = defaultdict(float)
    for result in results:
        for stage, seconds in result.seconds.items():
            total[stage] += seconds
    return dict(total)
