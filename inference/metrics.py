"""Video-level metrics of a submission against labels (fake = 1)."""
from __future__ import annotations

import numpy as np
from sklearn.metrics import accuracy_score, average_precision_score, log_loss, roc_auc_score, roc_curve

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


def equal_error_rate(y, p) -> float:
    """The rate at which reals called fake (FPR) equal fakes missed (1 - TPR), linearly interpolated on the ROC."""
    fpr, tpr, _ = roc_curve(y, p)
    gap = fpr - (1 - tpr)  # rises from -1 to 1 along the curve
    i = int(np.argmax(gap >= 0))
    if gap[i] == 0 or i == 0:
        return float(fpr[i])
    t = -gap[i - 1] / (gap[i] - gap[i - 1])
    return float(fpr[i - 1] + t * (fpr[i] - fpr[i - 1]))


def compute_metrics(y, p) -> dict[str, float | int | None]:
    """Kaggle log loss, class-balanced log loss ((fake + real)/2, the original's validation metric), ROC AUC,
    average precision, equal error rate, accuracy (fake when p > 0.5, so the 0.5 of an unscored video counts as
    real), ECE. A metric that needs a class which is absent is None (JSON null), never NaN."""
    y = np.asarray(y, dtype=int)
    p = np.asarray(p, dtype=np.float64)
    clipped = clip_probabilities(p)
    both = len(set(y.tolist())) == 2
    fake, real = y == 1, y == 0
    metrics = {
        "videos": int(len(y)), "fakes": int(fake.sum()), "reals": int(real.sum()),
        "roc_auc": float(roc_auc_score(y, p)) if both else None,
        "average_precision": float(average_precision_score(y, p)) if both else None,
        "eer": equal_error_rate(y, p) if both else None,
        "log_loss": float(log_loss(y, clipped, labels=[0, 1])) if len(y) else None,
        "fake_log_loss": float(-np.log(clipped[fake]).mean()) if fake.any() else None,
        "real_log_loss": float(-np.log(1 - clipped[real]).mean()) if real.any() else None,
        "accuracy": float(accuracy_score(y, p > 0.5)) if len(y) else None,
        "ece": expected_calibration_error(y, p) if len(y) else None,
    }
    metrics["balanced_log_loss"] = ((metrics["fake_log_loss"] + metrics["real_log_loss"]) / 2 if both else None)
    return metrics


RANKING_METRICS = ("roc_auc", "average_precision", "eer")


def group_metrics(y, p, groups) -> dict[str, dict]:
    """compute_metrics per group. A group holding one class only (an FF++ method's fakes, a source of reals) is
    ranked against every video of the other class (AUC, AP, EER: the usual per-method figure), while its counts
    and log losses are over its own videos."""
    y, p, groups = np.asarray(y, dtype=int), np.asarray(p, dtype=np.float64), np.asarray(groups, dtype=object)
    table = {}
    for group in sorted(set(groups.tolist())):
        member = groups == group
        own = compute_metrics(y[member], p[member])
        classes = set(y[member].tolist())
        if len(classes) == 1:
            against = member | (y != classes.pop())
            ranked = compute_metrics(y[against], p[against])
            own.update({name: ranked[name] for name in RANKING_METRICS})
            own["ranked_against"] = "all reals" if y[member][0] == 1 else "all fakes"
        table[str(group)] = own
    return table


def undefined_notes(metrics: dict) -> list[str]:
    """One note per metric that is None, saying why."""
    missing = [name for name, value in metrics.items() if value is None]
    if not missing:
        return []
    absent = "fakes" if not metrics.get("fakes") else "reals" if not metrics.get("reals") else None
    why = f"no {absent} among the labelled predictions" if absent else "no labelled predictions"
    return [f"{', '.join(missing)}: null ({why})"]
