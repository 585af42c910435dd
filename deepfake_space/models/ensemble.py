"""Two or more trained detectors as one network: the mean of their logits, each member at its own input size.

Members trained at different resolutions see different things (a 160 px network trained on self-blends and a
224 px one trained on DFDC's swaps); averaging their logits with fixed equal weights gives one P(fake) without
tuning anything on the data it is measured on. The ensemble takes the first member's input size; any other member
sees that crop resized inside the network (bicubic, antialiased, as the crops were resized for it in training), so
the app and the ONNX export treat it as one model with one input, and Grad-CAM averages the members' maps.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from deepfake_space.config import INCEPTION_MEAN, INCEPTION_STD, DetectorConfig
from deepfake_space.models.registry import build_network, default_config, register_model


class LogitAverage(nn.Module):
    """``members[i]`` scores the input resized to ``sizes[i]`` pixels; the output is the mean of their logits."""

    def __init__(self, members: list[nn.Module], sizes: list[int]) -> None:
        super().__init__()
        if len(members) != len(sizes) or len(members) < 2:
            raise ValueError(f"an ensemble needs two or more members, each with a size; got {len(members)} "
                             f"members and sizes {sizes}")
        self.members = nn.ModuleList(members)
        self.sizes = list(sizes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        logits = []
        for member, size in zip(self.members, self.sizes):
            if x.shape[-1] != size or x.shape[-2] != size:
                x_member = F.interpolate(x, size=(size, size), mode="bicubic", align_corners=False, antialias=True)
            else:
                x_member = x
            logits.append(member(x_member))
        return torch.stack(logits).mean(dim=0)


@register_model(DetectorConfig(
    arch="logit_average", input_size=224, mean=INCEPTION_MEAN, std=INCEPTION_STD, interpolation="bicubic",
    cam_target_layer="members.0.bn2,members.1.bn2",
    arch_args={"members": ["efficientnet_lite0", "efficientnet_lite0"], "sizes": [224, 160]},
))
def logit_average(members: list[str], sizes: list[int]) -> nn.Module:
    """Registered architectures ``members`` (with their default arguments, the released members' own) averaged;
    by default the released 224 px teacher with its 160 px self-blended sibling (6.8M params)."""
    return LogitAverage([build_network(default_config(arch)) for arch in members], sizes)
