"""ResNet8 students: three stages of one basic block each, built for speed as well as size.

A CIFAR-style ResNet8 run at 224 px does its first stage at 224x224 and costs about as many
multiply-adds as EfficientNet-Lite0. A stride-2 stem followed by a max-pool (as in ImageNet ResNets)
and a smaller input size move that work to 1/16 of the pixels.
"""

from __future__ import annotations

import torch
import torch.nn as nn

from deepfake_space.config import DetectorConfig
from deepfake_space.models.head import PooledLinearHead
from deepfake_space.models.registry import register_model


class BasicBlock(nn.Module):
    def __init__(self, in_ch: int, out_ch: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_ch, out_ch, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(out_ch)
        self.conv2 = nn.Conv2d(out_ch, out_ch, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_ch)
        self.act = nn.ReLU(inplace=True)
        self.shortcut = nn.Identity()
        if stride != 1 or in_ch != out_ch:
            self.shortcut = nn.Sequential(nn.Conv2d(in_ch, out_ch, 1, stride, bias=False), nn.BatchNorm2d(out_ch))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.act(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.act(out + self.shortcut(x))


class ResNet8(PooledLinearHead):
    """stem (conv 3x3 stride 2 [+ max-pool]) -> 3 basic blocks -> global average pool -> linear."""

    def __init__(self, widths: tuple[int, int, int] = (20, 40, 80), stem_stride: int = 2, stem_pool: bool = True,
                 drop_rate: float = 0.1, num_classes: int = 2) -> None:
        super().__init__()
        w1, w2, w3 = widths
        self.stem = nn.Sequential(
            nn.Conv2d(3, w1, 3, stem_stride, 1, bias=False), nn.BatchNorm2d(w1), nn.ReLU(inplace=True),
            nn.MaxPool2d(3, 2, 1) if stem_pool else nn.Identity(),
        )
        self.layer1 = BasicBlock(w1, w1, 1)
        self.layer2 = BasicBlock(w1, w2, 2)
        self.layer3 = BasicBlock(w2, w3, 2)
        self.init_head(w3, num_classes, drop_rate)
        for block in (self.layer1, self.layer2, self.layer3):
            nn.init.zeros_(block.bn2.weight)  # each residual branch starts as identity

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.layer3(self.layer2(self.layer1(self.stem(x))))


@register_model(DetectorConfig(arch="resnet8", input_size=112, cam_target_layer="layer3"))
def resnet8(**kwargs) -> nn.Module:
    """ResNet8, widths 20-40-80 (0.12M params), stride-2 stem + max-pool, 112 px input: 24x fewer MACs
    than EfficientNet-Lite0 at 224 px."""
    return ResNet8(**kwargs)


@register_model(DetectorConfig(arch="resnet8_w24", input_size=112, cam_target_layer="layer3",
                               arch_args={"widths": (24, 48, 96)}))
def resnet8_w24(**kwargs) -> nn.Module:
    """ResNet8 widened to 24-48-96 (0.17M params, still under the 0.2M student budget): ~1.4x the MACs of
    ``resnet8``, for testing whether the student is limited by width."""
    return ResNet8(**kwargs)
