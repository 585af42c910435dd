"""What the small CNN students share: timm's classifier interface over a global-average-pool and linear head."""

from __future__ import annotations

import torch
import torch.nn as nn


class PooledLinearHead(nn.Module):
    """features (``forward_features``, the subclass's) -> global average pool -> dropout -> linear."""

    def init_head(self, width: int, num_classes: int, drop_rate: float) -> None:
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.drop = nn.Dropout(drop_rate)
        self.fc = nn.Linear(width, num_classes)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def forward_head(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.drop(self.pool(x).flatten(1)))

    def get_classifier(self) -> nn.Module:
        return self.fc

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))
