"""Grad-CAM heat maps through pytorch-grad-cam, with the target layer and ViT token reshape taken
from each model's config.

A CAM object hooks the model, so one is made per call and callers serialise calls per model.
"""

from __future__ import annotations

from typing import Callable

import numpy as np
import torch
from pytorch_grad_cam import GradCAM
from pytorch_grad_cam.utils.image import show_cam_on_image
from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

from deepfake_space.models import DeepfakeDetector
from deepfake_space.transforms import denormalize

FAKE_CLASS = 1


def vit_reshape_transform(num_prefix_tokens: int, grid: tuple[int, int]) -> Callable[[torch.Tensor], torch.Tensor]:
    """(B, prefix + h*w, C) tokens -> (B, C, h, w) maps, with the grid read from the model, not assumed 14x14."""
    h, w = grid

    def reshape(tokens: torch.Tensor) -> torch.Tensor:
        patches = tokens[:, num_prefix_tokens:, :]
        return patches.reshape(patches.shape[0], h, w, patches.shape[-1]).permute(0, 3, 1, 2)

    return reshape


def _reshape_for(model: DeepfakeDetector) -> Callable | None:
    if model.config.cam_reshape == "vit":
        return vit_reshape_transform(*model.net.token_layout())
    if model.config.cam_reshape:
        raise ValueError(f"unknown cam_reshape {model.config.cam_reshape!r}")
    return None


def gradcam(model: DeepfakeDetector, batch: torch.Tensor) -> np.ndarray:
    """Grad-CAM maps for the 'fake' logit, shape (N, H, W) in [0, 1], at the model's input size; with several target
    layers (an ensemble's members) pytorch-grad-cam scales each layer's map to the input and averages them."""
    was_training = model.training
    model.eval()
    with GradCAM(model=model, target_layers=model.cam_target_layers, reshape_transform=_reshape_for(model)) as cam:
        maps = cam(input_tensor=batch, targets=[ClassifierOutputTarget(FAKE_CLASS)] * len(batch))
    model.train(was_training)
    return maps


def overlay(model: DeepfakeDetector, batch: torch.Tensor, maps: np.ndarray) -> list[np.ndarray]:
    """Heat maps over the crops each model actually saw (un-normalised), as RGB uint8 images."""
    images = denormalize(batch.detach().float().cpu(), model.config).permute(0, 2, 3, 1).numpy()
    return [show_cam_on_image(img.astype(np.float32), m, use_rgb=True, image_weight=0.55)
            for img, m in zip(images, maps)]
