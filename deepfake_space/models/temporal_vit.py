"""A simplified MM-Det: a hybrid ViT (ResNet50 stem + ViT-B/16) embeds each frame of a face clip, the
embeddings are averaged over the window and a linear layer decides.

Input: (batch, frames, 3, H, W); a plain (batch, 3, H, W) image counts as a one-frame clip.
"""

from __future__ import annotations

import timm
import torch
import torch.nn as nn

from deepfake_space.config import DetectorConfig
from deepfake_space.models.registry import register_model


class TemporalHybridViT(nn.Module):
    def __init__(self, backbone: str = "vit_base_r50_s16_224", img_size: int = 224, depth: int | None = None,
                 drop_rate: float = 0.1, num_classes: int = 2) -> None:
        super().__init__()
        extra = {} if depth is None else {"depth": depth}
        self.backbone = timm.create_model(backbone, pretrained=False, num_classes=0, img_size=img_size, **extra)
        self.drop = nn.Dropout(drop_rate)
        self.head = nn.Linear(self.backbone.num_features, num_classes)

    def token_layout(self) -> tuple[int, tuple[int, int]]:
        """(prefix tokens, patch grid) for reshaping ViT tokens into a map (Grad-CAM)."""
        return self.backbone.num_prefix_tokens, tuple(self.backbone.patch_embed.grid_size)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        clip = x if x.dim() == 5 else x.unsqueeze(1)
        b, t = clip.shape[:2]
        return self.backbone(clip.flatten(0, 1)).view(b, t, -1).mean(1)

    def forward_head(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.drop(x))

    def get_classifier(self) -> nn.Module:
        return self.head

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))


@register_model(DetectorConfig(arch="temporal_hybrid_vit", input_size=224, num_frames=10,
                               mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5), interpolation="bicubic",
                               cam_target_layer="backbone.blocks.11.norm1", cam_reshape="vit"))
def temporal_hybrid_vit(**kwargs) -> nn.Module:
    """vit_base_r50_s16_224 per frame, mean over a 10-frame window, Linear(768, 2)."""
    return TemporalHybridViT(**kwargs)
