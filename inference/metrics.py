"""Video-level metrics of a submission against labels (fake = 1)."""
from __future__ import annotations

import numpy as np
from sklearn.metrics import accuracy_score, average_precision_score, log_loss, roc_auc_score

KAGGLE_EPS = 1e-15
ECE_BINS = 10


def clip_probabilities(p) -> np.ndarray:
    """Kaggle's clipping to [1e-15, 1 - 1e-15] before the log loss."""
    return np.clip(np.asarray(p, dtype=np.float64), KAGGLE_EPS, 1 - KAGGLE_EPS)


def expected_calibration_error(y, p, bins: int = ECE_BINS) -> float:
    """Binary ECE on P(fake): 10 equal-width bins over [0, 1] (the last bin includes 1.0),
    sum over bins of (bin share of videos) * |fraction of fakes in bin - mean predicted P(fake) in bin|."""
    y, p = np.asarray(y, dtype=np.float64), np.asarray(p, dtype=np.float64)
    which = np.minimum((p * bins).astype(int), bins - 1)
    ece = 0.0
    for b in range(bins):
        in_bin = which == b
        if in_bin.any():
            ece += in_bin.mean() * abs(y[in_bin].mean() - p[in_bin].mean())
    return float(ece)


def compute_metrics(y, p) -> dict[str, float]:
    """Kaggle log loss, class-balanced log loss ((fake + real)/2, the original's validation metric), ROC AUC,
    average precision, accuracy (fake when p > 0.5, so the 0.5 of an unscored video counts as real), ECE.
    Metrics that need both classes are NaN when one is absent."""
    y = np.asarray(y, dtype=int)
    p = np.asarray(p, dtype=np.float64)
    clipped = clip_probabilities(p)
    both = len(set(y.tolist())) == 2
    fake, real = y == 1, y == 0
    metrics = {
        "videos": int(len(y)), "fakes": int(fake.sum()), "reals": int(real.sum()),
        "log_loss": float(log_loss(y, clipped, labels=[0, 1])) if len(y) else float("nan"),
        "fake_log_loss": float(-np.log(clipped[fake]).mean()) if fake.any() else float("nan"),
        "real_log_loss": float(-np.log(1 - clipped[real]).mean()) if real.any() else float("nan"),
        "roc_auc": float(roc_auc_score(y, p)) if both else float("nan"),
        "average_precision": float(average_precision_score(y, p)) if fake.any() else float("nan"),
        "accuracy": float(accuracy_score(y, p > 0.5)) if len(y) else float("nan"),
        "ece": expected_calibration_error(y, p) if len(y) else float("nan"),
    }
    metrics["balanced_log_loss"] = (metrics["fake_log_loss"] + metrics["real_log_loss"]) / 2
    return metrics
