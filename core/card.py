"""The model card: everything needed to score videos with a checkpoint, stored inside the checkpoint.

Like timm's `pretrained_cfg`, the card travels with the weights, so a predictor never has to be told the input
size, normalisation or aggregation that a checkpoint was trained for. The trainer writes one into every
checkpoint; the winner's 2020 release files have none and get `RELEASE_CARD`, the original's settings.

Fields (all plain JSON values in the checkpoint, under "card"):
    encoder               timm encoder name as in the config (old timm 0.4 names are accepted)
    input_size            side of the square model input in pixels (isotropic resize + centred padding)
    mean, std             per-channel normalisation of RGB values scaled to [0, 1]
    frames_per_video      frames sampled evenly over each video at prediction time
    detector_thresholds   MTCNN's three cascade thresholds at prediction time
    detector_downscale    the detector sees frames shrunk by this factor (PIL bicubic)
    crop_pad_divisor      the crop adds side // divisor around the face box
    aggregation           per-video aggregation of the face scores ("confident": the winner's strategy over all
                          faces; "mean"; "per_person": the confident strategy per face track, the highest track wins)
    confident_threshold   the score above which a face counts as a confident fake
    track_min_iou, track_max_centre_shift, track_max_size_ratio, track_max_gap, track_cut_difference
                          how the sampled frames' faces are linked into tracks (core/tracks.py; defaults suit
                          frames ~9 apart); cards written before tracks existed get these defaults
    person_min_frames     per_person: a track seen in fewer sampled frames does not decide the video
    calibration           None, or {"temperature": T, "bias": b}: p' = sigmoid(logit(p) / T + b) per video
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from core.faces import CROP_PAD_DIVISOR, DETECTOR_DOWNSCALE, INFERENCE_THRESHOLDS
from core.model_input import IMAGENET_MEAN, IMAGENET_STD
from core.tracks import PREDICTION_TRACKER, TrackerSettings

CARD_VERSION = 1
AGGREGATIONS = ("confident", "mean", "per_person")


class CardError(ValueError):
    """A card that is malformed, or cards that cannot be used together; the message names the files."""


def _valid_calibration(value) -> bool:
    if not isinstance(value, dict) or set(value) != {"temperature", "bias"}:
        return False
    temperature, bias = value["temperature"], value["bias"]
    return (isinstance(temperature, (int, float)) and isinstance(bias, (int, float)) and temperature > 0
            and math.isfinite(temperature) and math.isfinite(bias))


@dataclass(frozen=True)
class ModelCard:
    encoder: str
    input_size: int
    mean: tuple[float, ...] = IMAGENET_MEAN
    std: tuple[float, ...] = IMAGENET_STD
    frames_per_video: int = 32
    detector_thresholds: tuple[float, ...] = INFERENCE_THRESHOLDS
    detector_downscale: int = DETECTOR_DOWNSCALE
    crop_pad_divisor: int = CROP_PAD_DIVISOR
    aggregation: str = "confident"
    confident_threshold: float = 0.8
    track_min_iou: float = PREDICTION_TRACKER.min_iou
    track_max_centre_shift: float = PREDICTION_TRACKER.max_centre_shift
    track_max_size_ratio: float = PREDICTION_TRACKER.max_size_ratio
    track_max_gap: int = PREDICTION_TRACKER.max_gap
    track_cut_difference: float = PREDICTION_TRACKER.cut_difference
    person_min_frames: int = 4
    calibration: dict | None = field(default=None, compare=False)

    def __post_init__(self):
        for name in ("mean", "std", "detector_thresholds"):
            object.__setattr__(self, name, tuple(float(v) for v in getattr(self, name)))
        if len(self.mean) != 3 or len(self.std) != 3 or len(self.detector_thresholds) != 3:
            raise CardError("mean, std and detector_thresholds need three values each")
        if self.aggregation not in AGGREGATIONS:
            raise CardError(f"aggregation {self.aggregation!r} is not one of {', '.join(AGGREGATIONS)}")
        if int(self.input_size) <= 0 or int(self.frames_per_video) <= 0:
            raise CardError("input_size and frames_per_video must be positive")
        if self.calibration is not None and not _valid_calibration(self.calibration):
            raise CardError(f"calibration {self.calibration!r}: expected None or {{\"temperature\": T > 0, "
                            f"\"bias\": b}} (see evaluate.py --fit-calibration)")
        if not 0 <= self.track_min_iou <= 1 or self.track_max_centre_shift < 0 or self.track_max_size_ratio < 1 \
                or int(self.track_max_gap) < 0 or self.track_cut_difference <= 0 or int(self.person_min_frames) < 1:
            raise CardError("tracker settings out of range: track_min_iou in [0, 1], track_max_centre_shift >= 0, "
                            "track_max_size_ratio >= 1, track_max_gap >= 0, track_cut_difference > 0, "
                            "person_min_frames >= 1")
        if self.detector_downscale != DETECTOR_DOWNSCALE:
            raise CardError(f"detector_downscale {self.detector_downscale}: only {DETECTOR_DOWNSCALE} (half-size "
                            f"frames, as the original) is implemented")

    def to_dict(self) -> dict[str, Any]:
        values = dataclasses.asdict(self)
        for name in ("mean", "std", "detector_thresholds"):
            values[name] = list(values[name])
        return {"card_version": CARD_VERSION, **values}

    @classmethod
    def from_dict(cls, values: Mapping[str, Any], source: str = "card") -> "ModelCard":
        values = dict(values)
        version = values.pop("card_version", CARD_VERSION)
        if version != CARD_VERSION:
            raise CardError(f"{source}: card version {version} is not supported (this code reads {CARD_VERSION})")
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(values.keys() - known)
        if unknown:
            raise CardError(f"{source}: unknown card field(s) {', '.join(unknown)}")
        try:
            return cls(**values)
        except TypeError as err:
            raise CardError(f"{source}: {err}") from err

    def tracker(self) -> TrackerSettings:
        return TrackerSettings(min_iou=self.track_min_iou, max_centre_shift=self.track_max_centre_shift,
                               max_size_ratio=self.track_max_size_ratio, max_gap=int(self.track_max_gap),
                               cut_difference=self.track_cut_difference)

    def input_pipeline(self) -> dict[str, Any]:
        """The fields every member of an ensemble must share: all but the encoder and the calibration."""
        values = self.to_dict()
        for name in ("card_version", "encoder", "calibration"):
            values.pop(name)
        return values

    def with_overrides(self, overrides: Mapping[str, Any]) -> tuple["ModelCard", list[str]]:
        """(card with the explicit values applied, one line per value that differs from the card)."""
        messages = []
        current = self.to_dict()
        changed = {}
        for name, value in overrides.items():
            if value is None:
                continue
            normalised = list(value) if isinstance(value, tuple) else value
            if normalised != current[name]:
                messages.append(f"{name} {value} overrides the card's {current[name]}")
                changed[name] = value
        return dataclasses.replace(self, **changed), messages


# The winner's submission: B7 at 380 px, 32 frames, MTCNN 0.7/0.8/0.8 on half-size frames, 1/3 margin, confident.
RELEASE_CARD = ModelCard(encoder="tf_efficientnet_b7_ns", input_size=380)


def card_from_config(config: Mapping[str, Any]) -> ModelCard:
    """The card of a model trained with a (validated) training config."""
    inference = config.get("inference", {})
    return ModelCard(encoder=config["encoder"], input_size=int(config["size"]),
                     mean=tuple(config["normalize"]["mean"]), std=tuple(config["normalize"]["std"]), **inference)


def check_same_pipeline(cards: Mapping[Path | str, ModelCard]) -> None:
    """Raise CardError naming the files and fields when the cards of an ensemble disagree on the input pipeline."""
    items = list(cards.items())
    if len(items) < 2:
        return
    first_path, first = items[0]
    reference = first.input_pipeline()
    problems = []
    for path, card in items[1:]:
        pipeline = card.input_pipeline()
        for name, value in pipeline.items():
            if value != reference[name]:
                problems.append(f"{name}: {value} in {path} but {reference[name]} in {first_path}")
    if problems:
        raise CardError("the checkpoints' model cards disagree on the input pipeline, so no single set of crops "
                        "fits them all: " + "; ".join(problems)
                        + ". Score them in separate runs, or pass the values explicitly to force one pipeline.")
