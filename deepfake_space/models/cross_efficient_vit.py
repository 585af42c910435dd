"""Cross Efficient ViT: EfficientNet feature maps at two scales feed two ViT branches that exchange
information through cross-attention; the two CLS heads are averaged.

Every spatial position of each feature map becomes a patch token (a 1x1 projection), so every patch
reaches the transformer.
"""

from __future__ import annotations

import timm
import torch
import torch.nn as nn
from timm.layers import trunc_normal_
from timm.models.vision_transformer import Block

from deepfake_space.config import DetectorConfig
from deepfake_space.models.registry import register_model


class CrossAttention(nn.Module):
    """The CLS token of one branch queries the patch tokens of the other (CrossViT)."""

    def __init__(self, dim: int, other_dim: int, heads: int) -> None:
        super().__init__()
        self.to_other = nn.Linear(dim, other_dim)
        self.norm = nn.LayerNorm(other_dim)
        self.attn = nn.MultiheadAttention(other_dim, heads, batch_first=True)
        self.back = nn.Linear(other_dim, dim)

    def forward(self, tokens: torch.Tensor, other: torch.Tensor) -> torch.Tensor:
        cls = self.to_other(tokens[:, :1])
        context = self.norm(torch.cat([cls, other[:, 1:]], dim=1))
        fused, _ = self.attn(self.norm(cls), context, context, need_weights=False)
        return torch.cat([tokens[:, :1] + self.back(fused), tokens[:, 1:]], dim=1)


class Branch(nn.Module):
    def __init__(self, in_ch: int, dim: int, num_tokens: int, depth: int, heads: int) -> None:
        super().__init__()
        self.proj = nn.Conv2d(in_ch, dim, 1)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, dim))
        self.pos_embed = nn.Parameter(torch.zeros(1, num_tokens + 1, dim))
        self.blocks = nn.Sequential(*[Block(dim, heads, mlp_ratio=2.0) for _ in range(depth)])
        self.norm = nn.LayerNorm(dim)
        trunc_normal_(self.pos_embed, std=0.02)
        trunc_normal_(self.cls_token, std=0.02)

    def embed(self, fmap: torch.Tensor) -> torch.Tensor:
        tokens = self.proj(fmap).flatten(2).transpose(1, 2)
        return torch.cat([self.cls_token.expand(len(tokens), -1, -1), tokens], dim=1) + self.pos_embed


class CrossEfficientViT(nn.Module):
    def __init__(self, backbone: str = "efficientnet_b0", img_size: int = 224, dims: tuple[int, int] = (192, 384),
                 depth: int = 2, heads: int = 4, cross_depth: int = 2, drop_rate: float = 0.1,
                 num_classes: int = 2) -> None:
        super().__init__()
        self.backbone = timm.create_model(backbone, pretrained=False, features_only=True, out_indices=(3, 4))
        chans, reductions = self.backbone.feature_info.channels(), self.backbone.feature_info.reduction()
        self.branches = nn.ModuleList(
            Branch(c, d, (img_size // r) ** 2, depth, heads) for c, d, r in zip(chans, dims, reductions)
        )
        self.cross_small = nn.ModuleList(CrossAttention(dims[0], dims[1], heads) for _ in range(cross_depth))
        self.cross_large = nn.ModuleList(CrossAttention(dims[1], dims[0], heads) for _ in range(cross_depth))
        self.drop = nn.Dropout(drop_rate)
        self.heads = nn.ModuleList(nn.Linear(d, num_classes) for d in dims)

    def forward_features(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        fine, coarse = self.backbone(x)
        small, large = (b.embed(f) for b, f in zip(self.branches, (fine, coarse)))
        small, large = self.branches[0].blocks(small), self.branches[1].blocks(large)
        for to_large, to_small in zip(self.cross_small, self.cross_large):
            small, large = to_large(small, large), to_small(large, small)
        return self.branches[0].norm(small[:, 0]), self.branches[1].norm(large[:, 0])

    def forward_head(self, feats: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
        return torch.stack([head(self.drop(f)) for head, f in zip(self.heads, feats)]).mean(0)

    def get_classifier(self) -> nn.Module:
        return self.heads

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))


@register_model(DetectorConfig(arch="cross_efficient_vit", input_size=224, cam_target_layer="backbone.blocks.4"))
def cross_efficient_vit(**kwargs) -> nn.Module:
    """EfficientNet-B0 maps at stride 16 (196 tokens) and 32 (49 tokens), two ViT branches, cross-attention."""
    return CrossEfficientViT(**kwargs)
