"""The model config that travels with the weights (config.json next to model.safetensors).

Everything inference needs lives here, so training, evaluation, the CLI and the app all build their
preprocessing from one place and can never disagree (the timm ``pretrained_cfg`` idea).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
INCEPTION_MEAN = (0.5, 0.5, 0.5)
INCEPTION_STD = (0.5, 0.5, 0.5)
LABELS = ("real", "fake")
CONFIG_NAME = "config.json"


def decision_cuts(threshold: float, uncertain_band: float, fake_above: float | None = None) -> tuple[float, float]:
    """(real below, fake above) of a decision rule: the band either side of the threshold, its upper edge raised to
    ``fake_above`` when that is set. Configs, reports and records from before ``fake_above`` have the symmetric
    band."""
    return threshold - uncertain_band, threshold + uncertain_band if fake_above is None else fake_above


@dataclass
class DetectorConfig:
    """Architecture, preprocessing, labels and decision rule of one released detector."""

    arch: str
    arch_args: dict[str, Any] = field(default_factory=dict)
    input_size: int = 224
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD
    interpolation: str = "bilinear"
    crop_pct: float = 1.0
    num_frames: int = 1
    labels: tuple[str, str] = LABELS
    threshold: float = 0.5
    uncertain_band: float = 0.1
    # P(fake) above which a face is called fake, when higher than threshold + uncertain_band: real faces degraded as
    # uploads are (downscaled, re-encoded) drift up, and the stretch up to this cut is "uncertain", not "fake".
    fake_above: float | None = None
    face_margin: float = 0.1
    # P(fake) is the mean of the face's and its mirror image's logits, so a mirrored upload (a front camera's
    # selfie) gets the same verdict; the threshold was chosen on these averaged scores.
    tta: bool = False
    # Grad-CAM's layer; an ensemble names one per member, separated by commas, and the maps are averaged
    cam_target_layer: str = ""
    cam_reshape: str | None = None
    training: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        # JSON turns tuples into lists; keep the declared types after a round trip.
        self.mean = tuple(float(v) for v in self.mean)  # type: ignore[assignment]
        self.std = tuple(float(v) for v in self.std)  # type: ignore[assignment]
        self.labels = tuple(self.labels)  # type: ignore[assignment]
        if not 0.0 < self.threshold < 1.0:
            raise ValueError(f"threshold must lie in (0, 1), got {self.threshold}")
        if self.uncertain_band < 0:
            raise ValueError(f"uncertain_band must be >= 0, got {self.uncertain_band}")
        if self.fake_above is not None and not self.threshold + self.uncertain_band <= self.fake_above < 1.0:
            raise ValueError(f"fake_above must lie in [threshold + uncertain_band, 1), got {self.fake_above}")

    @property
    def real_cut(self) -> float:
        """P(fake) below which a face is called real."""
        return decision_cuts(self.threshold, self.uncertain_band, self.fake_above)[0]

    @property
    def fake_cut(self) -> float:
        """P(fake) above which a face is called fake."""
        return decision_cuts(self.threshold, self.uncertain_band, self.fake_above)[1]

    def verdict(self, p_fake: float) -> str:
        """fake / real / uncertain: P(fake) between the two cuts (the band around the threshold, stretched up to
        ``fake_above`` when set) is not a verdict."""
        if p_fake > self.fake_cut:
            return self.labels[1]
        return self.labels[0] if p_fake < self.real_cut else "uncertain"

    def uses_tta(self, override: bool | None = None) -> bool:
        """Whether P(fake) averages each face with its mirror: ``override`` when given (``--tta``/``--no-tta``),
        else as this model was released."""
        return self.tta if override is None else override

    def input_shape(self, batch_size: int = 1) -> tuple[int, ...]:
        """The model input for one image, or one clip of ``num_frames`` frames for a temporal model."""
        size = (3, self.input_size, self.input_size)
        if self.num_frames > 1:
            return (batch_size, self.num_frames, *size)
        return (batch_size, *size)

    @classmethod
    def from_folder(cls, folder: str | Path) -> "DetectorConfig":
        """A model folder's config.json, read without loading its weights (cards, reports, operating points)."""
        path = Path(folder) / CONFIG_NAME
        if not path.is_file():
            raise FileNotFoundError(f"{folder} has no {CONFIG_NAME}: not a released model folder")
        return cls(**json.loads(path.read_text()))

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def replace(self, **changes: Any) -> "DetectorConfig":
        return replace(self, **changes)
