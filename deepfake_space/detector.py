"""Media + models -> report: decode, detect faces once, run every model on the same crops.

Stages are timed separately (decode, detect, and per model preprocess / forward / Grad-CAM, with
CUDA synchronised), every face of every sampled frame goes through each model in one batch, and the
file is scored per person: each face track's mean P(fake), and the file's score is that of the most
suspicious track seen in at least ``MIN_TRACK_FRAMES`` sampled frames (a face glimpsed once, or a
detector's one-frame mistake, cannot decide a video on its own). A file with no face gets no verdict,
and any failure becomes a report with status "error" and a message.
"""

from __future__ import annotations

import logging
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np
import torch
from PIL import Image

from deepfake_space.errors import DeepfakeSpaceError
from deepfake_space.explain import gradcam, overlay
from deepfake_space.faces import DETECTORS, WHOLE_IMAGE, Face, FaceDetector, crop_face, whole_image_face
from deepfake_space.media import DEFAULT_NUM_FRAMES, MAX_DURATION_S, Media, load_media
from deepfake_space.models import DeepfakeDetector, load_detector, resolve_model_dir
from deepfake_space.report import (STATUS_ERROR, STATUS_NO_FACE, STATUS_OK, FaceReport, FrameReport, ModelReport,
                                   Report)
from deepfake_space.runtime import RuntimeChoice, choose_runtime
from deepfake_space.transforms import build_eval_transform, model_layout

logger = logging.getLogger(__name__)

MAX_BATCH = 32
MIN_TRACK_FRAMES = 3


def resolve_device(device: str = "auto") -> torch.device:
    """``auto`` picks CUDA when present; ``cuda`` without a GPU is an error, not a silent CPU run."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device == "cuda" and not torch.cuda.is_available():
        raise DeepfakeSpaceError("device 'cuda' was asked for but no CUDA GPU is available")
    return torch.device(device)


@dataclass
class LoadedModel:
    """A detector loaded once, with what the report says about it. ``engine`` runs the forwards (ONNX Runtime
    or PyTorch, ``deepfake_space.runtime``); ``model`` is the PyTorch network either way (Grad-CAM needs it)."""

    name: str
    spec: str
    model: DeepfakeDetector
    engine: RuntimeChoice
    file_size_mb: float  # of the weights file that runs the forwards
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def params(self) -> int:
        return self.model.num_params()

    def predict_proba(self, x: torch.Tensor, tta: bool | None = None) -> torch.Tensor:
        return (self.engine.onnx or self.model).predict_proba(x, tta=self.model.config.uses_tta(tta))


def load_models(specs: dict[str, str], device: torch.device, runtime: str = "auto",
                precision: str | dict[str, str] = "fp32") -> list[LoadedModel]:
    """Load each ``name -> folder or org/name@rev``; BatchNorms folded; channels-last; fp16 on CUDA. ``runtime``
    and ``precision`` (one for all, or per name) choose the engine (``runtime.choose_runtime``)."""
    loaded = []
    for name, spec in specs.items():
        model = load_detector(spec, device).fold_batchnorm().to(memory_format=torch.channels_last)
        if device.type == "cuda":
            model = model.half()
        wanted = precision if isinstance(precision, str) else precision.get(name, "fp32")
        engine = choose_runtime(resolve_model_dir(spec), runtime, wanted, device)
        loaded.append(LoadedModel(name, str(spec), model, engine, round(engine.weights.stat().st_size / 2**20, 3)))
    return loaded


def temporal_clips(batch: torch.Tensor, flat: list[tuple[int, Face]], num_frames: int) -> torch.Tensor:
    """For clip models: each face becomes the window of ``num_frames`` crops of the same person around
    it (repeating the last crop when the person is seen in fewer frames), shape (N, T, C, H, W)."""
    tracks: dict[int, list[int]] = {}
    for i, (_, face) in enumerate(flat):
        tracks.setdefault(face.track_id, []).append(i)
    clips = []
    for i, (_, face) in enumerate(flat):
        seq = tracks[face.track_id]
        start = min(max(0, seq.index(i) - num_frames // 2), max(0, len(seq) - num_frames))
        window = seq[start:start + num_frames]
        clips.append(batch[window + [window[-1]] * (num_frames - len(window))])
    return torch.stack(clips)


@dataclass
class Analysis:
    """The JSON report plus the images shown beside it (not serialised)."""

    report: Report
    media: Media | None = None
    faces: list[list[Face]] = field(default_factory=list)
    crops: dict[str, list[np.ndarray]] = field(default_factory=dict)
    cams: dict[str, list[tuple[int, np.ndarray]]] = field(default_factory=dict)


class Detector:
    """Holds the models and the face cascade; ``analyze`` is safe to call from several threads."""

    def __init__(self, models: dict[str, str] | list[LoadedModel], device: str = "auto",
                 face_detectors: Sequence[str] = DETECTORS, num_frames: int = DEFAULT_NUM_FRAMES,
                 max_duration: float = MAX_DURATION_S, tta: bool | None = None, runtime: str = "auto",
                 precision: str | dict[str, str] = "fp32") -> None:
        self.device = resolve_device(device)
        self.models = (models if isinstance(models, list)
                       else load_models(models, self.device, runtime, precision))
        self.faces = FaceDetector(face_detectors)
        self.num_frames = num_frames
        self.max_duration = max_duration
        self.tta = tta  # mirror averaging for every model; None: each as its config says

    def close(self) -> None:
        self.faces.close()

    def __enter__(self) -> "Detector":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    @contextmanager
    def _timer(self, latency: dict[str, float], stage: str) -> Iterator[None]:
        start = time.perf_counter()
        yield
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        latency[stage] = latency.get(stage, 0.0) + (time.perf_counter() - start) * 1000

    def analyze(self, path: str | Path, whole_image: bool = False, num_frames: int | None = None,
                cams: int = 0) -> Analysis:
        """Analyse one file. ``cams``: Grad-CAM overlays for the N most suspicious faces per model."""
        return self.score(self.prepare(path, whole_image, num_frames), cams)

    def prepare(self, path: str | Path, whole_image: bool = False, num_frames: int | None = None) -> Analysis:
        """The first half of ``analyze``: decode and find the faces (no model runs). A file that cannot be read
        comes back with status "error", one without a face with "no_face"; ``score`` leaves both as they are.
        Split so that ``batch`` can prepare the next files while the models score this one."""
        report = Report(file=Path(path).name, face_mode="whole_image" if whole_image else "detect",
                        device=str(self.device))
        try:
            return self._prepare(Path(path), report, whole_image, num_frames or self.num_frames)
        except DeepfakeSpaceError as e:
            report.status, report.message = STATUS_ERROR, str(e)
            logger.warning("%s: %s", path, e)
            return Analysis(report)

    def score(self, analysis: Analysis, cams: int = 0) -> Analysis:
        """The second half of ``analyze``: every model on the prepared faces, and the file's verdicts."""
        report = analysis.report
        if report.status != STATUS_OK:
            return analysis
        flat = [(fi, x) for fi, fs in enumerate(analysis.faces) for x in fs]
        try:
            for loaded, model_report in zip(self.models, report.models):
                self._run_model(loaded, model_report, analysis, flat, cams)
        except DeepfakeSpaceError as e:
            report.status, report.message = STATUS_ERROR, str(e)
            logger.warning("%s: %s", report.file, e)
            return Analysis(report)
        report.latency_ms["total"] = round(report.latency_ms["decode"] + report.latency_ms["detect"]
                                           + sum(m.total_ms for m in report.models), 2)
        return analysis

    def _prepare(self, path: Path, report: Report, whole_image: bool, num_frames: int) -> Analysis:
        media = load_media(path, num_frames=num_frames, max_duration=self.max_duration)
        report.kind, report.width, report.height = media.kind, media.width, media.height
        report.duration, report.fps = media.duration, media.fps
        report.latency_ms["decode"] = media.decode_ms
        with self._timer(report.latency_ms, "detect"):
            faces = ([[whole_image_face(f.image, f.index)] for f in media.frames] if whole_image
                     else self.faces.detect_frames(media.frames))
        report.frames = [FrameReport(f.index, f.timestamp,
                                     [FaceReport([round(v, 1) for v in x.box], round(x.score, 4), x.detector,
                                                 x.track_id) for x in fs])
                         for f, fs in zip(media.frames, faces)]
        report.detectors_used = sorted({x.detector for fs in faces for x in fs})
        report.models = [self._model_report(m) for m in self.models]
        if not any(faces):
            report.status = STATUS_NO_FACE
            where = "the image" if media.kind == "image" else f"any of the {len(media.frames)} sampled frames"
            report.message = f"No face was found in {where}; no verdict is given."
        return Analysis(report, media, faces)

    def _model_report(self, m: LoadedModel) -> ModelReport:
        cfg = m.model.config
        return ModelReport(name=m.name, spec=m.spec, arch=cfg.arch, params=m.params, file_size_mb=m.file_size_mb,
                           runtime=m.engine.name, input_size=cfg.input_size, threshold=cfg.threshold,
                           uncertain_band=cfg.uncertain_band, fake_above=cfg.fake_above, tta=cfg.uses_tta(self.tta))

    def _run_model(self, loaded: LoadedModel, out: ModelReport, analysis: Analysis,
                   flat: list[tuple[int, Face]], cams: int) -> None:
        model, cfg, latency = loaded.model, loaded.model.config, out.latency_ms
        frames = analysis.media.frames
        with self._timer(latency, "preprocess"):
            transform = build_eval_transform(cfg)
            # an input that is already a face crop is used as it is, as the training crops were: no added margin
            crops = [crop_face(frames[fi].image, face.box, 0.0 if face.detector == WHOLE_IMAGE else cfg.face_margin)
                     for fi, face in flat]
            batch = torch.stack([transform(Image.fromarray(c)) for c in crops])
            batch = model_layout(batch.to(self.device, dtype=next(model.parameters()).dtype))
        with loaded.lock:
            with self._timer(latency, "forward"):
                inputs = temporal_clips(batch, flat, cfg.num_frames) if cfg.num_frames > 1 else batch
                probs = self._forward(loaded, inputs)
            if cams:
                with self._timer(latency, "gradcam"):
                    top = np.argsort(-probs)[:cams]
                    maps = gradcam(model, batch[top].float() if self.device.type == "cpu" else batch[top])
                    analysis.cams[loaded.name] = list(zip(top.tolist(), overlay(model, batch[top], maps)))
        latency.update({k: round(v, 2) for k, v in latency.items()})
        analysis.crops[loaded.name] = crops
        self._aggregate(out, analysis.report, flat, probs, cfg)

    @torch.no_grad()
    def _forward(self, loaded: LoadedModel, batch: torch.Tensor) -> np.ndarray:
        """P(fake) per crop, in chunks of MAX_BATCH, optionally averaged with the horizontal flip."""
        probs = []
        for chunk in batch.split(MAX_BATCH):
            probs.append(loaded.predict_proba(chunk, tta=self.tta).cpu())
        return torch.cat(probs).numpy()

    @staticmethod
    def _aggregate(out: ModelReport, report: Report, flat: list[tuple[int, Face]], probs: np.ndarray, cfg) -> None:
        """Per face -> per person (mean over its frames) -> file (the most suspicious person seen long enough)."""
        per_frame: dict[int, float] = {}
        per_track: dict[int, list[float]] = {}
        for (fi, face), p, face_report in zip(flat, probs, (fr for f in report.frames for fr in f.faces)):
            p = float(p)
            face_report.p_fake[out.name] = round(p, 5)
            per_frame[fi] = max(per_frame.get(fi, 0.0), p)
            per_track.setdefault(face.track_id, []).append(p)
        out.faces_batched = len(flat)
        out.frame_p_fake = [round(per_frame[i], 5) if i in per_frame else None for i in range(len(report.frames))]
        out.track_p_fake = {str(t): round(float(np.mean(ps)), 5) for t, ps in per_track.items()}
        out.track_frames = {str(t): len(ps) for t, ps in per_track.items()}
        out.suspect_track = file_track(per_track)
        out.p_fake = out.track_p_fake[str(out.suspect_track)]
        out.verdict = cfg.verdict(out.p_fake)


def file_track(per_track: dict[int, list[float]], min_frames: int = MIN_TRACK_FRAMES) -> int:
    """The track that decides the file: the highest mean P(fake) among the tracks seen in at least
    ``min_frames`` frames (or in as many as the longest track, when no track lasts that long)."""
    needed = min(min_frames, max(len(ps) for ps in per_track.values()))
    return max((t for t, ps in per_track.items() if len(ps) >= needed), key=lambda t: float(np.mean(per_track[t])))
