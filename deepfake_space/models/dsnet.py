"""``dsnet_tiny``: a student at under 1 % of the teacher's parameters, built from depthwise separable blocks.

A depthwise 3x3 plus a pointwise 1x1 convolution costs about a ninth of a full 3x3 at the same width, so a
network this small can still be six blocks deep at 112 px, as the seed's "99 % fewer parameters"
students are (docs/RESULTS.md keeps what else was tried). Blocks that keep their shape are residual.
"""

from __future__ import annotations

import torch
import torch.nn as nn

from deepfake_space.config import DetectorConfig
from deepfake_space.models.head import PooledLinearHead
from deepfake_space.models.registry import register_model

# (output channels, stride) of each block after the 16-channel stride-2 stem: 56 -> 28 -> 14 -> 7 px at 112 px
TINY_BLOCKS = ((24, 2), (24, 1), (48, 2), (48, 1), (112, 2), (112, 1))


class SeparableBlock(nn.Module):
    """Depthwise 3x3 -> BN -> ReLU -> pointwise 1x1 -> BN (-> + input when the shape is kept) -> ReLU."""

    def __init__(self, in_ch: int, out_ch: int, stride: int) -> None:
        super().__init__()
        self.dw = nn.Conv2d(in_ch, in_ch, 3, stride, 1, groups=in_ch, bias=False)
        self.bn1 = nn.BatchNorm2d(in_ch)
        self.pw = nn.Conv2d(in_ch, out_ch, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_ch)
        self.act = nn.ReLU(inplace=True)
        self.residual = stride == 1 and in_ch == out_ch

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.bn2(self.pw(self.act(self.bn1(self.dw(x)))))
        return self.act(out + x if self.residual else out)


class DSNet(PooledLinearHead):
    """stem (conv 3x3 stride 2) -> separable blocks -> global average pool -> linear."""

    def __init__(self, blocks: tuple[tuple[int, int], ...] = TINY_BLOCKS, stem: int = 16, drop_rate: float = 0.1,
                 num_classes: int = 2) -> None:
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, stem, 3, 2, 1, bias=False), nn.BatchNorm2d(stem), nn.ReLU(inplace=True))
        layers, width = [], stem
        for out_ch, stride in blocks:
            layers.append(SeparableBlock(width, out_ch, stride))
            width = out_ch
        self.blocks = nn.Sequential(*layers)
        self.init_head(width, num_classes, drop_rate)
        for block in self.blocks:
            if block.residual:
                nn.init.zeros_(block.bn2.weight)  # each residual branch starts as identity

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.blocks(self.stem(x))


@register_model(DetectorConfig(arch="dsnet_tiny", input_size=112, cam_target_layer=f"blocks.{len(TINY_BLOCKS) - 1}"))
def dsnet_tiny(**kwargs) -> nn.Module:
    """Six depthwise separable blocks, 16-24-48-112 channels, 112 px input: 27k params, 0.8 % of Lite0's."""
    return DSNet(**kwargs)
