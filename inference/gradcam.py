"""Grad-CAM heat maps of face crops (the `grad-cam` package), for the evidence report's most suspicious crops.

The map is taken at the encoder's last feature layer (EfficientNet's `bn2`, after `conv_head`), for the FAKE
logit. Only that head needs gradients, so the encoder's trunk runs without autograd: the cost of a map is about
one forward pass of its crop. Maps are computed in float32 (a bf16/fp16 model is copied to float32 once).
"""
from __future__ import annotations

import copy

import numpy as np
import torch
from pytorch_grad_cam import GradCAM
from pytorch_grad_cam.utils.image import show_cam_on_image
from pytorch_grad_cam.utils.model_targets import BinaryClassifierOutputTarget
from torch import nn

from core.card import ModelCard
from core.model_input import normalize_batch


class _HeadWithGradients(nn.Module):
    """DeepFakeClassifier's forward, with autograd only from the encoder's `conv_head` on."""

    def __init__(self, classifier: nn.Module):
        super().__init__()
        self.classifier = classifier
        self.target_layer = classifier.encoder.bn2

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        encoder = self.classifier.encoder
        with torch.no_grad():
            x = encoder.blocks(encoder.bn1(encoder.conv_stem(x)))
        x = encoder.bn2(encoder.conv_head(x))
        x = self.classifier.avg_pool(x).flatten(1)
        return self.classifier.fc(self.classifier.dropout(x))


class HeatMapper:
    """Grad-CAM overlays for crops of one classifier (one model of the ensemble, named in the report)."""

    def __init__(self, classifier: nn.Module, card: ModelCard):
        if next(classifier.parameters()).dtype != torch.float32:
            classifier = copy.deepcopy(classifier).float()
        self.device = next(classifier.parameters()).device
        self.card = card
        self.wrapped = _HeadWithGradients(classifier.eval())
        for parameter in self.wrapped.classifier.encoder.conv_head.parameters():
            parameter.requires_grad_(True)  # the map needs the head's output to carry gradients

    def overlays(self, crops: np.ndarray) -> list[np.ndarray]:
        """RGB uint8 heat-map overlays, one per RGB uint8 model-input crop (N, size, size, 3)."""
        if len(crops) == 0:
            return []
        x = normalize_batch(torch.from_numpy(np.ascontiguousarray(crops)).to(self.device), torch.float32,
                            self.card.mean, self.card.std)
        with torch.enable_grad(), GradCAM(model=self.wrapped, target_layers=[self.wrapped.target_layer]) as cam:
            maps = cam(input_tensor=x, targets=[BinaryClassifierOutputTarget(1)] * len(crops))
        return [show_cam_on_image(crop.astype(np.float32) / 255.0, heat, use_rgb=True)
                for crop, heat in zip(crops, maps)]
