"""Preprocessing and training augmentations, built only from a model's ``DetectorConfig``.

Training, evaluation, the CLI and the app all call these, so a model is always fed the way it was
trained (timm's ``resolve_model_data_config`` idea).
"""

from __future__ import annotations

import random
from typing import Callable

import torch
import torch.nn.functional as F
from PIL import Image
from torchvision.transforms import InterpolationMode
from torchvision.transforms import v2

from deepfake_space.config import DetectorConfig


def _interpolation(config: DetectorConfig) -> InterpolationMode:
    return InterpolationMode(config.interpolation)


class DownUpScale(torch.nn.Module):
    """Shrink then re-enlarge a uint8 image: many DFDC crops were 90-223 px faces upscaled to 224."""

    def __init__(self, scale: tuple[float, float] = (0.4, 0.9)) -> None:
        super().__init__()
        self.scale = scale

    def forward(self, img: torch.Tensor) -> torch.Tensor:
        h, w = img.shape[-2:]
        s = random.uniform(*self.scale)
        small = F.interpolate(img[None].float(), size=(max(8, int(h * s)), max(8, int(w * s))),
                              mode="bilinear", antialias=True, align_corners=False)
        big = F.interpolate(small, size=(h, w), mode="bilinear", align_corners=False)
        return big[0].round().clamp(0, 255).to(torch.uint8)


def _to_model_input(config: DetectorConfig) -> list[v2.Transform]:
    return [v2.ToDtype(torch.float32, scale=True), v2.Normalize(config.mean, config.std)]


def build_input_transform(config: DetectorConfig) -> v2.Compose:
    """uint8 image at the input size -> normalised float tensor (images already framed, e.g. stored views)."""
    return v2.Compose(_to_model_input(config))


def resize_size(config: DetectorConfig) -> int:
    """The shorter side an image is resized to before the centre crop (timm's crop_pct)."""
    return int(round(config.input_size / config.crop_pct))


def build_eval_transform(config: DetectorConfig) -> v2.Compose:
    """PIL or uint8 tensor -> normalised float tensor of the model's input size."""
    return v2.Compose([
        v2.ToImage(),
        v2.Resize(resize_size(config), interpolation=_interpolation(config), antialias=True),
        v2.CenterCrop(config.input_size),
        *_to_model_input(config),
    ])


def build_train_transform(config: DetectorConfig, strength: float = 1.0,
                          degrade: Callable | None = None) -> v2.Compose:
    """Augmentations for face crops: framing jitter, flips, colour, blur, JPEG and resolution loss.

    ``degrade`` (a uint8 image -> uint8 image callable, e.g. ``train.degradations.RandomDegradation``)
    runs first, on the stored crop, as an upload degrades a face before anyone crops it. No hue jitter: on
    CPU it costs more than all the other augmentations together, and face swaps are not told apart by hue."""
    p = min(1.0, strength)
    return v2.Compose([
        v2.ToImage(),
        *([degrade] if degrade is not None else []),
        v2.RandomResizedCrop(config.input_size, scale=(0.75, 1.0), ratio=(0.9, 1.1),
                             interpolation=_interpolation(config), antialias=True),
        v2.RandomHorizontalFlip(),
        v2.RandomApply([v2.ColorJitter(0.25, 0.25, 0.2)], p=0.6 * p),
        v2.RandomApply([DownUpScale()], p=0.3 * p),
        v2.RandomApply([v2.GaussianBlur(5, sigma=(0.1, 1.5))], p=0.15 * p),
        v2.RandomApply([v2.JPEG((40, 95))], p=0.3 * p),
        v2.RandomGrayscale(p=0.05 * p),
        *_to_model_input(config),
    ])


def model_layout(x: torch.Tensor) -> torch.Tensor:
    """Image batches in channels-last memory order, the layout models are given for inference and training: on
    CPU it is ~30 % faster for both the teacher and the student at batch 1. Clip batches (5-D) are left as
    they are."""
    return x.contiguous(memory_format=torch.channels_last) if x.ndim == 4 else x


def denormalize(x: torch.Tensor, config: DetectorConfig) -> torch.Tensor:
    """Model input -> RGB in [0, 1] (Grad-CAM overlays, teacher re-normalisation)."""
    mean = torch.tensor(config.mean, device=x.device).view(-1, 1, 1)
    std = torch.tensor(config.std, device=x.device).view(-1, 1, 1)
    return (x * std + mean).clamp(0, 1)


def resize_batch(x: torch.Tensor, size: int) -> torch.Tensor:
    """Resize a float batch to ``size`` x ``size`` (antialiased bilinear), unchanged when already that size."""
    if x.shape[-2:] == (size, size):
        return x
    return F.interpolate(x, size=(size, size), mode="bilinear", antialias=True, align_corners=False)


def convert_input(x: torch.Tensor, source: DetectorConfig, target: DetectorConfig) -> torch.Tensor:
    """Re-render a batch prepared for ``source`` as ``target`` expects it (size and mean/std)."""
    if source.input_size == target.input_size and source.mean == target.mean and source.std == target.std:
        return x
    rgb = resize_batch(denormalize(x, source), target.input_size)
    mean = torch.tensor(target.mean, device=x.device).view(-1, 1, 1)
    std = torch.tensor(target.std, device=x.device).view(-1, 1, 1)
    return (rgb - mean) / std


def pil_to_rgb(img: Image.Image) -> Image.Image:
    return img if img.mode == "RGB" else img.convert("RGB")
