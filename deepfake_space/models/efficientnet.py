"""EfficientNet teachers via timm, and the ImageNet start for EfficientNet-Lite0.

The offline ImageNet checkpoint of EfficientNet-Lite0 (../shared/weights) uses the EfficientNet-PyTorch
key names (``_blocks.N._expand_conv``); ``load_efficientnet_pytorch_weights`` maps them onto timm's
``tf_efficientnet_lite0`` (``blocks.S.I.conv_pw``). The mapping is checked on a real photo in the tests.
"""

from __future__ import annotations

import logging
from pathlib import Path

import timm
import torch
import torch.nn as nn

from deepfake_space.config import INCEPTION_MEAN, INCEPTION_STD, DetectorConfig
from deepfake_space.models.registry import register_model

logger = logging.getLogger(__name__)

# EfficientNet-PyTorch block fields -> timm block fields. The first stage of the Lite models has no
# expansion conv, so its fields shift by one (timm's DepthwiseSeparableConv).
_EXPANDED_BLOCK = {"_expand_conv": "conv_pw", "_bn0": "bn1", "_depthwise_conv": "conv_dw", "_bn1": "bn2",
                   "_project_conv": "conv_pwl", "_bn2": "bn3"}
_UNEXPANDED_BLOCK = {"_depthwise_conv": "conv_dw", "_bn1": "bn1", "_project_conv": "conv_pw", "_bn2": "bn2"}
_TOP_LEVEL = {"_conv_stem": "conv_stem", "_bn0": "bn1", "_conv_head": "conv_head", "_bn1": "bn2", "_fc": "classifier"}


def _timm(name: str, drop_rate: float = 0.2, drop_path_rate: float = 0.0, num_classes: int = 2) -> nn.Module:
    net = timm.create_model(name, pretrained=False, num_classes=num_classes, drop_rate=drop_rate,
                            drop_path_rate=drop_path_rate)
    # timm's EfficientNet init scales the head by 1/sqrt(num_classes): with 2 classes the first logits
    # are in the tens. Start the head small instead.
    nn.init.normal_(net.classifier.weight, std=0.01)
    nn.init.zeros_(net.classifier.bias)
    return net


def efficientnet_pytorch_to_timm(state_dict: dict[str, torch.Tensor], net: nn.Module) -> dict[str, torch.Tensor]:
    """Rename an EfficientNet-PyTorch state dict to the names of the timm network ``net``."""
    flat_blocks = [f"{s}.{i}" for s, stage in enumerate(net.blocks) for i in range(len(stage))]
    mapped: dict[str, torch.Tensor] = {}
    for key, value in state_dict.items():
        parts = key.split(".")
        if parts[0] == "_blocks":
            block, field, rest = int(parts[1]), parts[2], parts[3:]
            has_expand = f"_blocks.{block}._expand_conv.weight" in state_dict
            table = _EXPANDED_BLOCK if has_expand else _UNEXPANDED_BLOCK
            new_key = ".".join(["blocks", flat_blocks[block], table[field], *rest])
        else:
            new_key = ".".join([_TOP_LEVEL[parts[0]], *parts[1:]])
        mapped[new_key] = value
    return mapped


def load_efficientnet_pytorch_weights(net: nn.Module, path: str | Path, keep_classifier: bool = False) -> None:
    """Initialise a timm EfficientNet-Lite from an EfficientNet-PyTorch ImageNet checkpoint.

    Every backbone tensor must match by name and shape; only the classifier may be left out (it has
    1000 ImageNet classes, the detector has 2).
    """
    state = efficientnet_pytorch_to_timm(torch.load(path, map_location="cpu", weights_only=True), net)
    if not keep_classifier:
        state = {k: v for k, v in state.items() if not k.startswith("classifier.")}
    missing, unexpected = net.load_state_dict(state, strict=False)
    missing = [k for k in missing if not k.startswith("classifier.") or keep_classifier]
    if missing or unexpected:
        raise KeyError(f"ImageNet weights do not fit: missing {missing[:5]}, unexpected {unexpected[:5]}")
    logger.info("initialised %s from %s", type(net).__name__, path)


@register_model(DetectorConfig(
    arch="efficientnet_lite0", input_size=224, mean=INCEPTION_MEAN, std=INCEPTION_STD,
    interpolation="bicubic", cam_target_layer="bn2",
), init_loader=load_efficientnet_pytorch_weights)
def efficientnet_lite0(**kwargs) -> nn.Module:
    """EfficientNet-Lite0 (3.4M params with a 2-class head), TF 'same' padding like its ImageNet weights."""
    return _timm("tf_efficientnet_lite0", **kwargs)


@register_model(DetectorConfig(
    arch="efficientnet_b7", input_size=224, mean=INCEPTION_MEAN, std=INCEPTION_STD,
    interpolation="bicubic", cam_target_layer="bn2", arch_args={"drop_rate": 0.5, "drop_path_rate": 0.2},
))
def efficientnet_b7(**kwargs) -> nn.Module:
    """The seed system's EfficientNet-B7 teacher (64M params), at 224 px as it was trained there."""
    return _timm("tf_efficientnet_b7", **kwargs)
