"""Optimizer and learning-rate schedule from a config (only what the original's configs use)."""
from __future__ import annotations

import torch
from torch import nn
from torch.optim.lr_scheduler import PolynomialLR


def trainable_parameter_groups(model: nn.Module, learning_rate: float, classifier_lr: float) -> list[dict]:
    """One group, or two when classifier_lr > 0 (the `fc` head apart). Frozen parameters are left out."""
    named = [(name, p) for name, p in model.named_parameters() if p.requires_grad]
    if classifier_lr <= 0:
        return [{"params": [p for _, p in named], "lr": learning_rate}]
    head = [p for name, p in named if name.split(".")[0] == "fc"]
    body = [p for name, p in named if name.split(".")[0] != "fc"]
    return [{"params": body, "lr": learning_rate}, {"params": head, "lr": classifier_lr}]


def create_optimizer(optimizer_config: dict, model: nn.Module) -> torch.optim.Optimizer:
    if optimizer_config["type"] != "SGD":
        raise ValueError(f"optimizer.type {optimizer_config['type']!r} is not supported (only SGD)")
    groups = trainable_parameter_groups(model, optimizer_config["learning_rate"], optimizer_config["classifier_lr"])
    return torch.optim.SGD(groups, lr=optimizer_config["learning_rate"], momentum=optimizer_config["momentum"],
                           weight_decay=optimizer_config["weight_decay"], nesterov=optimizer_config["nesterov"])


def create_scheduler(schedule_config: dict, optimizer: torch.optim.Optimizer) -> PolynomialLR:
    """PolyLR stepped every iteration: lr(step) = lr0 * (1 - step / max_iter) ** power, 0 after max_iter.

    After the n-th step() this equals the original's PolyLR, whose step(n - 1) gave (1 - n / max_iter) ** power.
    """
    if schedule_config["type"] != "poly" or schedule_config["mode"] != "step":
        raise ValueError(f"schedule {schedule_config['type']}/{schedule_config['mode']} is not supported "
                         f"(only poly/step)")
    params = schedule_config["params"]
    return PolynomialLR(optimizer, total_iters=int(params["max_iter"]), power=float(params["power"]))
