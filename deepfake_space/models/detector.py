"""``DeepfakeDetector``: one network plus the config it was trained with, saved in Hub layout.

``save_pretrained`` writes config.json + model.safetensors; ``from_pretrained`` reads a local folder or
a Hub repo (through the Hub cache), safetensors only and with strict key matching, so a half-loaded
model can never produce a verdict.
"""

import logging
from pathlib import Path
from typing import Callable

import safetensors.torch
import torch
import torch.nn as nn
from huggingface_hub import PyTorchModelHubMixin

from deepfake_space.config import DetectorConfig
from deepfake_space.models.fusion import folded_copy
from deepfake_space.models.registry import build_network, default_config

logger = logging.getLogger(__name__)

WEIGHTS_NAME = "model.safetensors"


def mirror_averaged(forward: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, tta: bool) -> torch.Tensor:
    """``forward``'s float32 logits for ``x``; with ``tta`` the mean of each input's and its mirror image's, run as
    one batch (half the calls of two forwards, which is most of a small model's time at batch 1)."""
    if not tta:
        return forward(x).float()
    both = forward(torch.cat([x, x.flip(-1)])).float()
    return (both[: len(x)] + both[len(x):]) / 2


class DeepfakeDetector(
    nn.Module,
    PyTorchModelHubMixin,
    library_name="deepfake_space",
    tags=["deepfake-detection", "image-classification"],
    pipeline_tag="image-classification",
    license="other",
):
    """A binary real/fake classifier: ``forward`` returns logits of shape (batch, 2)."""

    def __init__(self, config: DetectorConfig) -> None:
        # No ``from __future__ import annotations`` in this module: huggingface_hub reads this annotation
        # at runtime to decode config.json into a DetectorConfig.
        super().__init__()
        self.config = config
        self.net = build_network(config)
        self._num_params = sum(p.numel() for p in self.parameters())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)

    @torch.no_grad()
    def predict_proba(self, x: torch.Tensor, tta: bool | None = None) -> torch.Tensor:
        """P(fake) per input, as float32. With ``tta`` (default: as the config says) the logits of each input and
        of its mirror image are averaged: the one flip test-time augmentation evaluation, the CLI and the app share."""
        return mirror_averaged(self.net, x, self.config.uses_tta(tta)).softmax(dim=-1)[..., 1]

    @property
    def cam_target_layers(self) -> list[nn.Module]:
        """Grad-CAM's layers: one, or one per member of an ensemble (``cam_target_layer`` lists them with commas)."""
        return [self.net.get_submodule(name) for name in self.config.cam_target_layer.split(",")]

    def num_params(self) -> int:
        """Parameters of the architecture as trained and released (folding BatchNorms for inference changes the
        count in memory, not what the checkpoint holds)."""
        return self._num_params

    def fold_batchnorm(self) -> "DeepfakeDetector":
        """For inference only: fold each BatchNorm into the convolution before it (``models.fusion``), checked
        on a random input of this model's shape."""
        param = next(self.net.parameters())
        probe = torch.randn(self.config.input_shape(), device=param.device, dtype=param.dtype)
        self.net = folded_copy(self.net, probe)
        return self

    @classmethod
    def create(cls, arch: str, **overrides) -> "DeepfakeDetector":
        """A freshly initialised detector of a registered architecture."""
        return cls(default_config(arch, **overrides))

    @classmethod
    def _from_pretrained(  # type: ignore[override]
        cls,
        *,
        model_id: str,
        revision: str | None,
        cache_dir: str | Path | None,
        force_download: bool,
        local_files_only: bool,
        token: str | bool | None,
        map_location: str = "cpu",
        strict: bool = True,
        **model_kwargs,
    ) -> "DeepfakeDetector":
        from deepfake_space.models.loading import resolve_model_dir

        folder = resolve_model_dir(
            model_id if revision is None else f"{model_id}@{revision}",
            cache_dir=cache_dir,
            local_files_only=local_files_only,
            token=token,
        )
        model = cls(**model_kwargs)
        weights = folder / WEIGHTS_NAME
        if not weights.is_file():
            raise FileNotFoundError(f"{folder} has no {WEIGHTS_NAME}: only safetensors weights are loaded")
        missing, unexpected = safetensors.torch.load_model(model, str(weights), strict=True, device=map_location)
        assert not missing and not unexpected
        model.eval()
        logger.info("loaded %s (%s, %.2fM params) from %s", model.config.arch, folder.name,
                    model.num_params() / 1e6, folder)
        return model
