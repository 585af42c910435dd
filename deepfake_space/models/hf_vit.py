"""A Hugging Face ``transformers`` ViTForImageClassification, as in the FaceForensics++ seed system."""

from __future__ import annotations

from typing import Any

import torch
import torch.nn as nn
from transformers import ViTConfig, ViTForImageClassification

from deepfake_space.config import DetectorConfig
from deepfake_space.models.registry import register_model


class HFViT(nn.Module):
    """Wraps ViTForImageClassification so it returns plain logits like every other network here."""

    def __init__(self, num_classes: int = 2, **vit_config: Any) -> None:
        super().__init__()
        self.model = ViTForImageClassification(ViTConfig(num_labels=num_classes, **vit_config))

    def token_layout(self) -> tuple[int, tuple[int, int]]:
        cfg = self.model.config
        side = cfg.image_size // cfg.patch_size
        return 1, (side, side)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(pixel_values=x).logits

    def get_classifier(self) -> nn.Module:
        return self.model.classifier


@register_model(DetectorConfig(arch="hf_vit_base_patch16", input_size=224, mean=(0.5, 0.5, 0.5),
                               std=(0.5, 0.5, 0.5), cam_target_layer="model.vit.layers.11.layernorm_before",
                               cam_reshape="vit"))
def hf_vit_base_patch16(**kwargs) -> nn.Module:
    """google/vit-base-patch16-224 sizes (86M params), randomly initialised here (no hub access)."""
    return HFViT(**kwargs)
