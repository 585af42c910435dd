"""The analysis report: everything shown for one file, as plain dataclasses that round-trip JSON.

Images (crops, Grad-CAM overlays) are not part of the report; they travel beside it in
``detector.Analysis`` so the JSON stays small and diffable.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any

from deepfake_space.config import decision_cuts

STATUS_OK = "ok"
STATUS_NO_FACE = "no_face"
STATUS_ERROR = "error"
VERDICT_NO_FACE = "no_face"


@dataclass
class FaceReport:
    """One detected face in one sampled frame, with every model's P(fake) for it."""

    box: list[float]
    score: float
    detector: str
    track_id: int
    p_fake: dict[str, float] = field(default_factory=dict)


@dataclass
class FrameReport:
    index: int
    timestamp: float
    faces: list[FaceReport] = field(default_factory=list)


@dataclass
class ModelReport:
    """One model's verdict on the file, how it got there and what it cost."""

    name: str
    spec: str
    arch: str
    params: int
    file_size_mb: float
    input_size: int
    threshold: float
    uncertain_band: float
    fake_above: float | None = None  # DetectorConfig.fake_above: the fake cut, when above threshold + band
    runtime: str = "torch"  # what ran the forwards: "torch", "onnx fp32" or "onnx int8"
    tta: bool = False  # P(fake) averaged over the face and its mirror image
    verdict: str = VERDICT_NO_FACE
    p_fake: float | None = None
    frame_p_fake: list[float | None] = field(default_factory=list)
    track_p_fake: dict[str, float] = field(default_factory=dict)
    track_frames: dict[str, int] = field(default_factory=dict)
    suspect_track: int | None = None
    faces_batched: int = 0
    latency_ms: dict[str, float] = field(default_factory=dict)

    @property
    def cuts(self) -> tuple[float, float]:
        """(real below, fake above), as the model's config decides."""
        return decision_cuts(self.threshold, self.uncertain_band, self.fake_above)

    @property
    def total_ms(self) -> float:
        return sum(self.latency_ms.values())


@dataclass
class Report:
    file: str
    kind: str = ""
    status: str = STATUS_OK
    message: str = ""
    width: int = 0
    height: int = 0
    duration: float | None = None
    fps: float | None = None
    face_mode: str = "detect"
    detectors_used: list[str] = field(default_factory=list)
    device: str = "cpu"
    frames: list[FrameReport] = field(default_factory=list)
    models: list[ModelReport] = field(default_factory=list)
    latency_ms: dict[str, float] = field(default_factory=dict)

    @property
    def faces_found(self) -> int:
        return sum(len(f.faces) for f in self.frames)

    def model(self, name: str) -> ModelReport:
        return next(m for m in self.models if m.name == name)

    def agreement(self) -> bool | None:
        """Whether all models reached the same verdict (None when there is no verdict to compare)."""
        verdicts = {m.verdict for m in self.models}
        if self.status != STATUS_OK or len(self.models) < 2:
            return None
        return len(verdicts) == 1

    def speedup(self, fast: str, slow: str) -> float | None:
        """How many times less model time (preprocess + forward) ``fast`` needed than ``slow``."""
        slow_ms, fast_ms = (sum(v for k, v in self.model(n).latency_ms.items() if k in ("preprocess", "forward"))
                            for n in (slow, fast))
        return slow_ms / fast_ms if fast_ms > 0 else None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def to_json(self, indent: int | None = 2) -> str:
        return json.dumps(self.to_dict(), indent=indent)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "Report":
        data = dict(data)
        data["frames"] = [FrameReport(**{**f, "faces": [FaceReport(**x) for x in f["faces"]]}) for f in data["frames"]]
        data["models"] = [ModelReport(**m) for m in data["models"]]
        return cls(**data)

    @classmethod
    def from_json(cls, text: str) -> "Report":
        return cls.from_dict(json.loads(text))
