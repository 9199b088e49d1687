"""JSON training configs: defaults merged in, every key checked (a misspelt key is an error, not a default)."""
from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

from core.card import RELEASE_CARD
from core.model_input import IMAGENET_MEAN, IMAGENET_STD
from core.settings import read_json_object

# Dicts are merged key by key; FREE_FORM sections accept any keys; REQUIRED keys (None here) must be given.
DEFAULTS: dict[str, Any] = {
    "network": "DeepFakeClassifier",
    "encoder": None,
    "batches_per_epoch": None,
    "size": None,
    "fp16": True,  # mixed precision on CUDA (bf16 where supported, else fp16 + GradScaler); CPU runs fp32
    "model_params": {},
    "pretrained_file": None,  # a local ImageNet weights file, or "shipped:efficientnet_lite0"
    "head_init_std": None,  # std of a normal init of the 1-logit head (None: torch's default init)
    "freeze": 0,  # encoder stem + this many first stages frozen for the whole run
    # Where the fake samples come from: "dataset" (the fake videos' crops, the original) or "sbi" (real crops
    # only, each paired with a self-blended copy made on the fly; training/datasets/sbi.py).
    "fakes": "dataset",
    # The crops of the people a fake video left untouched: "fake" (the original's labels), "real" or "drop";
    # see training/datasets/unchanged_tracks.py and docs/people.md.
    "unchanged_tracks": "fake",
    "optimizer": {
        "type": "SGD",
        "batch_size": None,  # per process (GPU)
        "momentum": 0.9,
        "weight_decay": 1e-4,
        "learning_rate": 0.01,
        "nesterov": True,
        "clip": 1.0,  # gradient-norm clipping (the original hard-coded 1.0 and left this key unused)
        "classifier_lr": -1,  # > 0: the head gets its own learning rate
    },
    "schedule": {
        "type": "poly",
        "mode": "step",
        "epochs": None,
        "params": {"max_iter": None, "power": 0.9},  # max_iter None: epochs * batches_per_epoch
    },
    "normalize": {"mean": list(IMAGENET_MEAN), "std": list(IMAGENET_STD)},
    "losses": {"BinaryCrossentropy": 1},
    # How the trained model scores a video; copied into every checkpoint's model card (core.card).
    "inference": {
        "frames_per_video": RELEASE_CARD.frames_per_video,
        "detector_thresholds": list(RELEASE_CARD.detector_thresholds),
        "aggregation": RELEASE_CARD.aggregation,  # or "mean", or "per_person" (docs/people.md)
        "confident_threshold": RELEASE_CARD.confident_threshold,
        "person_min_frames": RELEASE_CARD.person_min_frames,
    },
}
FREE_FORM = {"model_params", "losses"}
CHOICES = {"fakes": ("dataset", "sbi"), "unchanged_tracks": ("fake", "real", "drop")}
REPLACED_WHOLE = {"losses"}  # a config's own mapping replaces the default instead of adding to it


class ConfigError(ValueError):
    """A config key that is unknown, missing or of the wrong kind; the message names key and file."""


def _merge(defaults: dict, given: dict, source: str, prefix: str = "") -> dict:
    merged = copy.deepcopy(defaults)
    for key, value in given.items():
        dotted = f"{prefix}{key}"
        if key not in defaults:
            known = ", ".join(f"{prefix}{k}" for k in defaults)
            raise ConfigError(f"{source}: unknown config key '{dotted}' (known keys: {known})")
        if dotted in FREE_FORM:
            if not isinstance(value, dict):
                raise ConfigError(f"{source}: config key '{dotted}' must be an object")
            merged[key] = dict(value) if dotted in REPLACED_WHOLE else {**defaults[key], **value}
        elif isinstance(defaults[key], dict):
            if not isinstance(value, dict):
                raise ConfigError(f"{source}: config key '{dotted}' must be an object")
            merged[key] = _merge(defaults[key], value, source, f"{dotted}.")
        else:
            merged[key] = value
    return merged


REQUIRED = ("encoder", "batches_per_epoch", "size", "optimizer.batch_size", "schedule.epochs")


def _lookup(tree: dict, dotted: str):
    for part in dotted.split("."):
        tree = tree[part]
    return tree


def _check_required(config: dict, source: str) -> None:
    for dotted in REQUIRED:
        if _lookup(config, dotted) is None:
            raise ConfigError(f"{source}: required config key '{dotted}' is missing")


def _check_choices(config: dict, source: str) -> None:
    for dotted, allowed in CHOICES.items():
        value = _lookup(config, dotted)
        if value not in allowed:
            raise ConfigError(f"{source}: config key '{dotted}' is {value!r}; use one of {', '.join(allowed)}")
    batch_size = config["optimizer"]["batch_size"]
    if config["fakes"] == "sbi" and batch_size % 2:
        raise ConfigError(f"{source}: with \"fakes\": \"sbi\" a batch holds real/blend pairs, so "
                          f"optimizer.batch_size must be even (it is {batch_size})")


def parse_override(text: str) -> tuple[list[str], Any]:
    """'optimizer.learning_rate=0.02' -> (['optimizer', 'learning_rate'], 0.02); non-JSON values stay strings."""
    if "=" not in text:
        raise ConfigError(f"override {text!r} is not KEY=VALUE")
    key, raw = text.split("=", 1)
    try:
        value = json.loads(raw)
    except json.JSONDecodeError:
        value = raw
    return key.strip().split("."), value


def _nest(path: list[str], value) -> dict:
    for part in reversed(path):
        value = {part: value}
    return value


def _deep_update(target: dict, update: dict) -> None:
    for key, value in update.items():
        if isinstance(value, dict) and isinstance(target.get(key), dict):
            _deep_update(target[key], value)
        else:
            target[key] = value


def load_config(path: str | Path, overrides: list[str] = ()) -> dict:
    """Read a JSON config, apply KEY=VALUE overrides, merge defaults, and validate every key."""
    path = Path(path)
    try:
        given = read_json_object(path, "config file")
    except ValueError as err:
        raise ConfigError(str(err)) from err
    for text in overrides:
        _deep_update(given, _nest(*parse_override(text)))
    source = f"{path}" + (f" (with overrides {list(overrides)})" if overrides else "")
    config = _merge(DEFAULTS, given, source)
    _check_required(config, source)
    _check_choices(config, source)
    params = config["schedule"]["params"]
    if params["max_iter"] is None:
        params["max_iter"] = config["schedule"]["epochs"] * config["batches_per_epoch"]
    return config
