"""What a training checkpoint holds beyond the weights, so that a resumed run is the run that was interrupted.

Saved after every epoch: model, optimizer, schedule, GradScaler, best metric, the config, the model card, and
the random states of every rank (Python, NumPy, torch CPU and CUDA). The DataLoader workers' seeds and the
DistributedSampler order are drawn from these states and the epoch number, so restoring them replays the
next epoch exactly. A resume whose config or run options (--seed, --fold, ...) differ from the checkpoint's is
refused, naming the keys: the schedule, above all, is a function of the config (more epochs on resume would
otherwise train at lr 0).
"""
from __future__ import annotations

import math
import random
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from core.card import ModelCard
from core.checkpoints import CheckpointError, prefixed_state_dict, read_checkpoint, strip_module_prefix
from core.runtime import Context
from core.settings import differences
from training.tools.config import rename_deprecated_keys, with_later_defaults


class ResumeError(ValueError):
    """A checkpoint that cannot continue this run; the message says why and what to do."""


def capture_rng() -> dict:
    """This process's random states as plain values (loadable with weights_only=True)."""
    name, keys, position, has_gauss, cached = np.random.get_state()
    return {
        "python": random.getstate(),
        "numpy": [name, keys.tolist(), position, has_gauss, cached],
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
    }


def restore_rng(state: dict) -> None:
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    name, keys, position, has_gauss, cached = state["numpy"]
    np.random.set_state((name, np.asarray(keys, dtype=np.uint32), position, has_gauss, cached))
    torch.set_rng_state(state["torch"])
    if state["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


@dataclass
class TrainState:
    model: nn.Module  # the bare model (unwrapped)
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler
    scaler: torch.amp.GradScaler
    start_epoch: int = 0
    best_metric: float = math.inf

    def checkpoint(self, epoch: int, metric: float | None, config: dict, card: ModelCard, rng: list[dict]) -> dict:
        """`rng` holds every rank's random states, in rank order."""
        return {
            "epoch": epoch + 1,  # the next epoch to run, as the original
            "step": int(self.scheduler.last_epoch),
            "state_dict": prefixed_state_dict(self.model),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "scaler": self.scaler.state_dict(),
            "bce_best": float(self.best_metric),
            "metric": None if metric is None else float(metric),
            "config": config,
            "card": card.to_dict(),
            "rng": rng,
        }

    def restore(self, path: Path, config: dict, context: Context) -> None:
        """Continue from `path`: weights, optimizer, schedule, epoch, best metric and this rank's random states."""
        try:
            checkpoint = read_checkpoint(path)
        except CheckpointError as err:
            raise ResumeError(str(err)) from err
        missing = [key for key in ("optimizer", "scheduler", "epoch", "bce_best", "config") if key not in checkpoint]
        if missing:
            raise ResumeError(f"{path}: no {', '.join(missing)} entries; only checkpoints written by this trainer can "
                              f"be resumed (a released model can be loaded as --pretrained-file)")
        recorded = with_later_defaults(rename_deprecated_keys(checkpoint["config"], str(path), warn=False))
        changed = differences(recorded, config, "checkpoint", "now")
        if changed:
            raise ResumeError(f"{path} was trained with another config or options, and resuming would continue a "
                              f"different run (a longer schedule would restart at the old run's final learning "
                              f"rate): {'; '.join(changed)}. Resume with the checkpoint's config and options, or "
                              f"start a new run (another --prefix or --output-dir) to train with these.")
        self.model.load_state_dict(strip_module_prefix(checkpoint["state_dict"]), strict=True)
        self.optimizer.load_state_dict(checkpoint["optimizer"])
        self.scheduler.load_state_dict(checkpoint["scheduler"])
        if checkpoint.get("scaler") and self.scaler.is_enabled():
            self.scaler.load_state_dict(checkpoint["scaler"])
        self.start_epoch = int(checkpoint["epoch"])
        self.best_metric = float(checkpoint["bce_best"])
        states = checkpoint.get("rng") or []
        if len(states) != context.world_size:
            raise ResumeError(f"{path} holds the random states of {len(states)} process(es), this run has "
                              f"{context.world_size}: resume with the same number of processes")
        restore_rng(states[context.rank])
