"""Temperature-and-bias calibration of video scores: p' = sigmoid(logit(p) / T + b).

Fitted by maximum likelihood (log loss) on the video scores of a labelled holdout. T > 0 keeps the order of the
scores, so AUC, AP and EER do not change; only the log loss (and ECE) do. A calibration file is JSON:

    {"temperature": T, "bias": b,
     "checkpoints": [{"name", "bytes", "mtime_ns"}, ...] or null (unknown),
     "fitted_on": {"predictions", "labels", "videos", "fakes", "reals"},
     "cross_validation": {"folds", "log_loss_before", "log_loss_after", ...}}

The card field `calibration` (core.card) holds only {"temperature", "bias"}. predict_folder.py writes
<output>.calibration.json beside a CSV whose scores it calibrated, so evaluate.py knows (and refuses to fit a new
calibration on already calibrated scores).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy.optimize import minimize
from scipy.special import expit, logit

from core.atomic import atomic_write_json
from core.damage import named_errors, read_json
from inference.metrics import clip_probabilities

MIN_TEMPERATURE, MAX_TEMPERATURE = 1e-3, 1e3


class CalibrationError(ValueError):
    """A calibration that cannot be fitted or a calibration file that cannot be used; the message says why."""


@dataclass(frozen=True)
class Calibration:
    temperature: float
    bias: float

    def apply(self, p) -> np.ndarray:
        return expit(logit(clip_probabilities(p)) / self.temperature + self.bias)

    def card_value(self) -> dict:
        return {"temperature": self.temperature, "bias": self.bias}


def fit_calibration(y, p) -> Calibration:
    """T and b that minimise the log loss of sigmoid(logit(p) / T + b) on labels y (1 = fake)."""
    y = np.asarray(y, dtype=np.float64)
    if len(set(y.tolist())) != 2:
        raise CalibrationError("fitting a calibration needs labelled reals and fakes; only one class is present")
    x = logit(clip_probabilities(p))

    def loss_and_gradient(params):
        inverse_t, bias = params
        q = expit(inverse_t * x + bias)
        q = np.clip(q, 1e-15, 1 - 1e-15)
        loss = -np.mean(y * np.log(q) + (1 - y) * np.log(1 - q))
        residual = (q - y) / len(y)
        return loss, np.array([np.sum(residual * x), np.sum(residual)])

    result = minimize(loss_and_gradient, x0=np.array([1.0, 0.0]), jac=True, method="L-BFGS-B",
                      bounds=[(1 / MAX_TEMPERATURE, 1 / MIN_TEMPERATURE), (None, None)])
    inverse_t, bias = result.x
    return Calibration(temperature=float(1 / inverse_t), bias=float(bias))


def stratified_folds(y, folds: int, seed: int = 0) -> np.ndarray:
    """A fold number per video, each class spread evenly over the folds (shuffled with `seed`)."""
    y = np.asarray(y)
    rng = np.random.default_rng(seed)
    fold_of = np.empty(len(y), dtype=int)
    for label in (0, 1):
        members = np.flatnonzero(y == label)
        fold_of[rng.permutation(members)] = np.arange(len(members)) % folds
    return fold_of


def cross_validated(y, p, folds: int, seed: int = 0) -> tuple[np.ndarray, int]:
    """(out-of-fold calibrated scores, folds used): each fold is calibrated by a fit on the other folds.

    The folds are capped at the size of the smaller class, so that every training split holds both classes."""
    y = np.asarray(y, dtype=int)
    smaller = min(int((y == 0).sum()), int((y == 1).sum()))
    folds = min(folds, smaller)
    if folds < 2:
        raise CalibrationError(f"cross-validating a calibration needs at least 2 reals and 2 fakes; "
                               f"found {int((y == 0).sum())} reals and {int((y == 1).sum())} fakes")
    fold_of = stratified_folds(y, folds, seed)
    calibrated = np.empty(len(y), dtype=np.float64)
    for fold in range(folds):
        held_out = fold_of == fold
        calibrated[held_out] = fit_calibration(y[~held_out], p[~held_out]).apply(p[held_out])
    return calibrated, folds


def write_calibration(path: Path, calibration: Calibration, checkpoints: list[dict] | None, fitted_on: dict,
                      cross_validation: dict) -> None:
    atomic_write_json(path, {**calibration.card_value(), "checkpoints": checkpoints, "fitted_on": fitted_on,
                             "cross_validation": cross_validation}, indent=2)


def applied_record(output: Path) -> Path:
    """<output>.calibration.json: written by predict_folder.py beside a CSV whose scores it calibrated."""
    return Path(f"{output}.calibration.json")


def record_applied(output: Path, calibration: Calibration | None, source: str | None) -> None:
    """Say beside the CSV which calibration its scores went through; remove an old record when none did."""
    if calibration is None:
        applied_record(output).unlink(missing_ok=True)
    else:
        atomic_write_json(applied_record(output), {**calibration.card_value(), "source": source}, indent=2)


def read_applied(output: Path) -> dict | None:
    path = applied_record(output)
    if not path.is_file():
        return None
    remedy = "delete it and run predict_folder.py again to say which calibration the CSV's scores went through"
    record = read_json(path, CalibrationError, "a calibration record", remedy)
    if not isinstance(record, dict):
        raise CalibrationError(f"{path}: a calibration record must be a JSON object; {remedy}")
    return record


def read_calibration(path: Path) -> tuple[Calibration, list[dict] | None]:
    """(the calibration, the checkpoints it was fitted for or None when unknown); CalibrationError naming the file."""
    path = Path(path)
    if not path.is_file():
        raise CalibrationError(f"{path}: calibration file not found")
    remedy = "write one with evaluate.py --fit-calibration"
    values = read_json(path, CalibrationError, "a calibration file", remedy)
    with named_errors(path, CalibrationError, "a calibration file", remedy):
        calibration = Calibration(float(values["temperature"]), float(values["bias"]))
        checkpoints = values.get("checkpoints")
        if checkpoints is not None:
            checkpoints = [{"name": str(item["name"]), "bytes": int(item["bytes"]), "mtime_ns": int(item["mtime_ns"])}
                           for item in checkpoints]
    if not (np.isfinite(calibration.temperature) and calibration.temperature > 0 and np.isfinite(calibration.bias)):
        raise CalibrationError(f"{path}: temperature must be positive and bias finite, found "
                               f"{calibration.temperature}, {calibration.bias}; {remedy}")
    return calibration, checkpoints


def check_checkpoints(path: Path, fitted_for: list[dict] | None, used: list[dict]) -> str | None:
    """CalibrationError when the file was fitted for other checkpoints than `used`; a note when it names none."""
    if fitted_for is None:
        return (f"{path} does not say which checkpoints it was fitted for; applying it to "
                f"{', '.join(item['name'] for item in used)} as given")
    key = sorted((item["name"], item["bytes"], item["mtime_ns"]) for item in fitted_for)
    if key != sorted((item["name"], item["bytes"], item["mtime_ns"]) for item in used):
        raise CalibrationError(f"{path} was fitted for {', '.join(item['name'] for item in fitted_for)} (as they were "
                               f"then: size and mtime), not for the checkpoints of this run "
                               f"({', '.join(item['name'] for item in used)}); fit one for these with "
                               f"evaluate.py --fit-calibration")
    return None
