"""Validation as the original scores it: per-video mean probability, then class-balanced log loss."""
from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass

import numpy as np
import torch
from sklearn.metrics import roc_auc_score
from torch import nn
from torch.utils.data import DataLoader
from tqdm import tqdm

PROBABILITY_EPS = 1e-15


@dataclass
class ValidationResult:
    fake_loss: float  # log loss over fake videos (nan without fakes)
    real_loss: float
    balanced_loss: float  # (fake_loss + real_loss) / 2, or the part that exists
    auc: float  # video-level ROC AUC (nan with one class)
    video_predictions: dict[str, dict]  # video -> {"prob": p, "label": y}

    def metrics(self) -> dict[str, float]:
        return {"fake_loss": self.fake_loss, "real_loss": self.real_loss, "balanced_loss": self.balanced_loss,
                "auc": self.auc}


def class_balanced_log_loss(probs: np.ndarray, labels: np.ndarray) -> tuple[float, float, float]:
    """(fake_loss, real_loss, their mean): log loss over each class separately, then averaged."""
    probs = np.clip(np.asarray(probs, dtype=np.float64), PROBABILITY_EPS, 1 - PROBABILITY_EPS)
    labels = np.asarray(labels)
    fakes = labels > 0.5
    fake_loss = float(-np.log(probs[fakes]).mean()) if fakes.any() else math.nan
    real_loss = float(-np.log(1 - probs[~fakes]).mean()) if (~fakes).any() else math.nan
    present = [part for part in (fake_loss, real_loss) if not math.isnan(part)]
    return fake_loss, real_loss, float(np.mean(present)) if present else math.nan


@torch.no_grad()
def predict_crops(model: nn.Module, dataset, batch_size: int, workers: int, precision, device: torch.device):
    """Yields (video, label, probability) for every crop of the dataset."""
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=False, num_workers=workers,
                        pin_memory=device.type == "cuda")
    for batch in tqdm(loader, desc="validation", leave=False, dynamic_ncols=True):
        with precision.autocast(device):
            logits = model(batch["image"].to(device, non_blocking=True))
        probs = torch.sigmoid(logits.float()).view(-1).cpu().numpy()
        yield from zip(batch["video"], batch["labels"].view(-1).numpy(), probs)


def validate(model: nn.Module, dataset, batch_size: int, workers: int, precision,
             device: torch.device) -> ValidationResult:
    was_training = model.training
    model.eval()
    per_video: dict[str, list[float]] = defaultdict(list)
    labels: dict[str, float] = {}
    for video, label, prob in predict_crops(model, dataset, batch_size, workers, precision, device):
        per_video[video].append(float(prob))
        labels[video] = float(label)
    model.train(was_training)
    videos = sorted(per_video)
    video_probs = np.array([np.mean(per_video[v]) for v in videos])
    video_labels = np.array([labels[v] for v in videos])
    fake_loss, real_loss, balanced = class_balanced_log_loss(video_probs, video_labels)
    has_both = len(set(video_labels > 0.5)) == 2
    auc = float(roc_auc_score(video_labels > 0.5, video_probs)) if has_both else math.nan
    predictions = {v: {"prob": float(p), "label": int(y)} for v, p, y in zip(videos, video_probs, video_labels)}
    return ValidationResult(fake_loss, real_loss, balanced, auc, predictions)
