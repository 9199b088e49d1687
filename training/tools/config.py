"""JSON training configs: defaults merged in, every key checked (a misspelt key is an error, not a default)."""
from __future__ import annotations

import copy
import json
import warnings
from pathlib import Path
from typing import Any

from core.card import RELEASE_CARD
from core.damage import named_errors
from core.model_input import IMAGENET_MEAN, IMAGENET_STD
from core.settings import read_json_object
from training.datasets.sbi import BLEND_RATIOS, HULL_VARIANTS

# Dicts are merged key by key; FREE_FORM sections accept any keys; REQUIRED keys (None here) must be given.
DEFAULTS: dict[str, Any] = {
    "network": "DeepFakeClassifier",
    "encoder": None,
    "batches_per_epoch": None,
    "size": None,
    "mixed_precision": True,  # autocast on CUDA: bf16 where the GPU has it, else fp16 + GradScaler; CPU runs fp32
    "model_params": {},
    "pretrained_file": None,  # a local ImageNet weights file, or "shipped:efficientnet_lite0"
    "head_init_std": None,  # std of a normal init of the 1-logit head (None: torch's default init)
    "freeze": 0,  # encoder stem + this many first stages frozen for the whole run
    # Where the fake samples come from: "dataset" (the fake videos' crops, the original) or "sbi" (real crops
    # only, each paired with a self-blended copy made on the fly; training/datasets/sbi.py).
    "fakes": "dataset",
    # null, or {"alpha": A, "p": P}: with probability P a fake crop is mixed with its original's crop of the same
    # frame and face, weight lambda ~ Beta(A, A), target mixed alike (training/datasets/pair_mixup.py).
    "pair_mixup": None,
    # How "fakes": "sbi" makes its blends (training/datasets/sbi.py; the defaults are the paper's): the blend
    # ratio is drawn from blend_ratios, the mask shape from masks; deform: the elastic deformation and blur of
    # the mask (false: the hard hull).
    "sbi": {"blend_ratios": list(BLEND_RATIOS), "masks": list(HULL_VARIANTS), "deform": True},
    # true: train on the crops of the re-encoded copies too (preprocessing.reencode_variants); never validated on.
    # null (off) rather than false, so that checkpoints saved before the key existed resume with the same config.
    "reencode_variants": None,
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
CHOICES = {"fakes": ("dataset", "sbi"), "reencode_variants": (None, False, True),
           "unchanged_tracks": ("fake", "real", "drop")}
CONFIG_REMEDY = "fix it, or start again from a config in configs/"
REPLACED_WHOLE = {"losses"}  # a config's own mapping replaces the default instead of adding to it
# Old key names still accepted, with a deprecation message: old -> new.
RENAMED = {"fp16": "mixed_precision"}  # it picks bf16 on GPUs that have it, so "fp16" said less than it does


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


def _check_pair_mixup(config: dict, source: str) -> None:
    mix = config["pair_mixup"]
    if mix is None:
        return
    example = '{"alpha": 0.5, "p": 0.5}'
    if not isinstance(mix, dict) or set(mix) != {"alpha", "p"}:
        raise ConfigError(f"{source}: config key 'pair_mixup' must be null or an object {example}, not {mix!r}")
    if not all(isinstance(mix[k], (int, float)) and not isinstance(mix[k], bool) for k in mix) \
            or mix["alpha"] <= 0 or not 0 < mix["p"] <= 1:
        raise ConfigError(f"{source}: config key 'pair_mixup' needs alpha > 0 and 0 < p <= 1, not {mix!r}")
    if config["fakes"] == "sbi":
        raise ConfigError(f"{source}: 'pair_mixup' mixes a dataset fake with its original's aligned crop; with "
                          f"\"fakes\": \"sbi\" there are no such pairs: drop one of the two")


def _check_sbi(config: dict, source: str) -> None:
    settings, default = config["sbi"], DEFAULTS["sbi"]
    ratios, masks = settings["blend_ratios"], settings["masks"]
    if not isinstance(ratios, list) or not ratios or not all(
            isinstance(r, (int, float)) and not isinstance(r, bool) and 0 < r <= 1 for r in ratios):
        raise ConfigError(f"{source}: config key 'sbi.blend_ratios' must be a non-empty list of numbers in (0, 1] "
                          f"(one is drawn per blend; repeat a value to draw it more often), not {ratios!r}")
    if not isinstance(masks, list) or not masks or not set(masks) <= set(HULL_VARIANTS):
        raise ConfigError(f"{source}: config key 'sbi.masks' must be a non-empty list of "
                          f"{', '.join(HULL_VARIANTS)}, not {masks!r}")
    if not isinstance(settings["deform"], bool):
        raise ConfigError(f"{source}: config key 'sbi.deform' must be true or false, not {settings['deform']!r}")
    if config["fakes"] != "sbi" and settings != default:
        changed = ", ".join(f"sbi.{k}" for k in settings if settings[k] != default[k])
        raise ConfigError(f"{source}: {changed} set how self-blended fakes are made, and with \"fakes\": "
                          f"\"{config['fakes']}\" none are made: drop it or set \"fakes\": \"sbi\"")


def rename_deprecated_keys(given: dict, source: str, warn: bool = True) -> dict:
    """`given` with old key names (RENAMED) replaced by the new ones; a FutureWarning names each one found.

    Giving both the old and the new name is an error. `warn=False` for configs recorded in checkpoints: they are
    not the user's to edit.
    """
    for old, new in RENAMED.items():
        if old not in given:
            continue
        if new in given:
            raise ConfigError(f"{source}: config keys '{old}' and '{new}' are the same setting ('{old}' is its old "
                              f"name); keep only '{new}'")
        if warn:
            warnings.warn(f"{source}: config key '{old}' is deprecated and will be removed; rename it to '{new}' "
                          f"(same meaning)", FutureWarning, stacklevel=3)
        given = {(new if key == old else key): value for key, value in given.items()}
    return given


def with_later_defaults(recorded: dict, defaults: dict = DEFAULTS) -> dict:
    """A config recorded in a checkpoint, with every key added to DEFAULTS since it was saved set to its default:
    each new key's default keeps the behaviour the run was trained with, so such a checkpoint still resumes."""
    filled = dict(recorded)
    for key, default in defaults.items():
        if key not in filled:
            filled[key] = copy.deepcopy(default)
        elif isinstance(default, dict) and isinstance(filled[key], dict) and key not in FREE_FORM:
            filled[key] = with_later_defaults(filled[key], default)
    return filled


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
        given = read_json_object(path, "config file", CONFIG_REMEDY)
    except ValueError as err:
        raise ConfigError(str(err)) from err
    given = rename_deprecated_keys(given, str(path))
    for text in overrides:
        _deep_update(given, rename_deprecated_keys(_nest(*parse_override(text)), f"override {text!r}"))
    source = f"{path}" + (f" (with overrides {list(overrides)})" if overrides else "")
    with named_errors(source, ConfigError, "a config", CONFIG_REMEDY):  # a value of the wrong kind
        config = _merge(DEFAULTS, given, source)
        _check_required(config, source)
        _check_choices(config, source)
        _check_pair_mixup(config, source)
        _check_sbi(config, source)
        params = config["schedule"]["params"]
        if params["max_iter"] is None:
            params["max_iter"] = config["schedule"]["epochs"] * config["batches_per_epoch"]
    return config
