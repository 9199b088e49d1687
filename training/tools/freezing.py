"""Freezing parts of DeepFakeClassifier: early encoder stages for a whole run, the whole encoder for a while."""
from __future__ import annotations

from torch import nn


def encoder_stem_and_stages(model: nn.Module, num_stages: int) -> list[nn.Module]:
    """The timm EfficientNet stem (conv_stem, bn1) and its first `num_stages` block stages."""
    if num_stages <= 0:
        return []
    encoder = model.encoder
    if num_stages > len(encoder.blocks):
        raise ValueError(f"freeze {num_stages}: the encoder has only {len(encoder.blocks)} stages")
    return [encoder.conv_stem, encoder.bn1, *encoder.blocks[:num_stages]]


def freeze(modules: list[nn.Module]) -> None:
    for module in modules:
        for parameter in module.parameters():
            parameter.requires_grad_(False)


def freeze_unused_encoder_head(model: nn.Module) -> None:
    """The encoder's ImageNet classifier is kept only so released checkpoints load strictly; it gets no
    gradient, which DDP would otherwise wait for."""
    freeze([model.encoder.get_classifier()])


def set_train_mode(model: nn.Module, frozen: list[nn.Module]) -> None:
    """model.train(), but frozen modules stay in eval mode (their BatchNorm statistics do not drift)."""
    model.train()
    for module in frozen:
        module.eval()
