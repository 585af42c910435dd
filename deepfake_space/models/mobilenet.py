"""MobileNetV2 (torchvision layout, so the offline ImageNet weights in ../shared load as they are)."""

from __future__ import annotations

import logging
from pathlib import Path

import torch
import torch.nn as nn
from torchvision.models import mobilenet_v2 as tv_mobilenet_v2

from deepfake_space.config import DetectorConfig
from deepfake_space.models.registry import register_model

logger = logging.getLogger(__name__)


class MobileNetV2(nn.Module):
    """torchvision MobileNetV2 with the timm-style forward_features / forward_head split."""

    def __init__(self, width_mult: float = 1.0, drop_rate: float = 0.2, num_classes: int = 2) -> None:
        super().__init__()
        tv = tv_mobilenet_v2(weights=None, width_mult=width_mult, num_classes=num_classes, dropout=drop_rate)
        self.features = tv.features
        self.classifier = tv.classifier

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x)

    def forward_head(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(nn.functional.adaptive_avg_pool2d(x, 1).flatten(1))

    def get_classifier(self) -> nn.Module:
        return self.classifier[-1]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))


def load_torchvision_imagenet_weights(net: MobileNetV2, path: str | Path) -> None:
    """Initialise the backbone from torchvision's ImageNet state dict; the 1000-class head is dropped."""
    state = torch.load(path, map_location="cpu", weights_only=True)
    state = {k: v for k, v in state.items() if not k.startswith("classifier.")}
    missing, unexpected = net.load_state_dict(state, strict=False)
    if unexpected or any(not k.startswith("classifier.") for k in missing):
        raise KeyError(f"ImageNet weights do not fit: missing {missing[:5]}, unexpected {unexpected[:5]}")
    logger.info("initialised MobileNetV2 from %s", path)


@register_model(DetectorConfig(arch="mobilenetv2_100", input_size=224, cam_target_layer="features.18"),
                init_loader=load_torchvision_imagenet_weights)
def mobilenetv2_100(**kwargs) -> nn.Module:
    """MobileNetV2 at full width (2.2M params with a 2-class head)."""
    return MobileNetV2(**{"width_mult": 1.0, **kwargs})


@register_model(DetectorConfig(arch="mobilenetv2_035", input_size=160, cam_target_layer="features.18"))
def mobilenetv2_035(**kwargs) -> nn.Module:
    """MobileNetV2 at 0.35 width (0.4M params), a mobile student for 160 px faces."""
    return MobileNetV2(**{"width_mult": 0.35, **kwargs})
