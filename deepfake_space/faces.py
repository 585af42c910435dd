"""Face detection (MediaPipe -> dlib -> OpenCV Haar cascade), square face crops, and per-person tracks.

The detectors differ in recall and speed: MediaPipe's BlazeFace is fast and confident on frontal
faces, dlib's HOG detector catches smaller faces, and the Haar cascade is the always-available last
resort. The cascade stops at the first one that finds a face, so the usual case costs one detector.

A MediaPipe or Haar hit is only a face once a second detector agrees: dlib's HOG detector, run on the
region around the hit re-framed so the face is about 80 px wide. BlazeFace gives random noise a 0.5-score
"face" and Haar fires on textures; an unconfirmed hit is dropped, so they get no verdict.
"""

from __future__ import annotations

import importlib.util
import logging
import math
import threading
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Sequence

import cv2
import numpy as np

from deepfake_space.errors import FaceDetectorError
from deepfake_space.media import Frame

logger = logging.getLogger(__name__)

Box = tuple[float, float, float, float]

DETECTORS = ("mediapipe", "dlib", "haar")
# BlazeFace short-range, from the mediapipe 0.10.21 wheel (see assets/NOTICE.md).
MEDIAPIPE_MODEL = Path(__file__).parent / "assets" / "face_detection_short_range.tflite"
HAAR_CASCADE = Path(cv2.data.haarcascades) / "haarcascade_frontalface_default.xml"
_PACKAGES = {"mediapipe": "mediapipe", "dlib": "dlib", "haar": "cv2"}
# What a detector may raise on a bad frame; anything else is a bug and propagates.
_RUNTIME_ERRORS = (RuntimeError, ValueError, cv2.error)


@dataclass
class Face:
    """One detected face; ``track_id`` groups the same person across frames."""

    box: Box
    score: float
    detector: str
    frame_index: int
    track_id: int = 0


class _MediaPipe:
    """BlazeFace through the MediaPipe Tasks API (``mp.solutions`` is gone from mediapipe 0.10.3x).

    BlazeFace short-range sees a 128 x 128 letterboxed copy of its input, so in a 16:9 frame a face of
    half the frame height shrinks to ~35 px and is mostly missed. The frame is therefore also scanned as
    overlapping square windows (each face narrower than ~60 % of the short side lies wholly inside one),
    and the detections are merged: a few 5 ms passes instead of falling back to dlib at ~100 ms per frame.
    Each window is one more chance of a false positive, so window detections need ``WINDOW_MIN_SCORE``
    (faces in windows score > 0.9; skimage's cat scores 0.52).
    """

    WINDOW_MIN_SCORE = 0.75

    def __init__(self, min_score: float) -> None:
        self._window_min_score = max(min_score, self.WINDOW_MIN_SCORE)
        # Imported here: mediapipe takes ~0.5 s to import and is only needed when this detector is used.
        from mediapipe.tasks.python import BaseOptions, vision

        options = vision.FaceDetectorOptions(base_options=BaseOptions(model_asset_path=str(MEDIAPIPE_MODEL)),
                                             running_mode=vision.RunningMode.IMAGE,
                                             min_detection_confidence=min_score)
        self._detector = vision.FaceDetector.create_from_options(options)

    def detect(self, rgb: np.ndarray) -> list[tuple[Box, float]]:
        found = self._detect_window(rgb, 0, 0)
        for x0, y0, side in square_windows(rgb.shape[1], rgb.shape[0]):
            found += [d for d in self._detect_window(rgb[y0:y0 + side, x0:x0 + side], x0, y0)
                      if d[1] >= self._window_min_score]
        return merge_detections(found)

    def _detect_window(self, rgb: np.ndarray, x0: int, y0: int) -> list[tuple[Box, float]]:
        import mediapipe as mp

        result = self._detector.detect(mp.Image(image_format=mp.ImageFormat.SRGB, data=np.ascontiguousarray(rgb)))
        found = []
        for detection in result.detections:
            b = detection.bounding_box
            score = detection.categories[0].score if detection.categories else 1.0
            found.append(((x0 + b.origin_x, y0 + b.origin_y, x0 + b.origin_x + b.width, y0 + b.origin_y + b.height),
                          float(score)))
        return found

    def close(self) -> None:
        self._detector.close()


def square_windows(width: int, height: int, min_aspect: float = 1.2) -> list[tuple[int, int, int]]:
    """Overlapping squares (x0, y0, side) spanning a frame whose aspect ratio is at least ``min_aspect``.

    ``ceil(long / short) + 1`` windows, evenly spaced, so neighbours overlap by at least a third of the side.
    """
    short, long = min(width, height), max(width, height)
    if long < min_aspect * short:
        return []
    count = math.ceil(long / short) + 1
    offsets = [round(i * (long - short) / (count - 1)) for i in range(count)]
    return [(o, 0, short) if width >= height else (0, o, short) for o in offsets]


def merge_detections(found: list[tuple[Box, float]], overlap: float = 0.6) -> list[tuple[Box, float]]:
    """Greedy suppression, best score first: a box is dropped when ``overlap`` of the smaller of it and a
    kept box is shared (one face seen whole in one window and cut by the edge of another)."""
    kept: list[tuple[Box, float]] = []
    for box, score in sorted(found, key=lambda d: d[1], reverse=True):
        if all(_intersection(box, k) < overlap * min(_area(box), _area(k)) for k, _ in kept):
            kept.append((box, score))
    return kept


class _Dlib:
    """dlib's HOG + linear SVM detector, upsampling once so faces down to ~40 px are found.

    Its score is an SVM margin; it is reported as ``1 / (1 + exp(-margin))`` so that ``min_score``
    0.5 is exactly dlib's own default threshold. That is a squashed margin, not a calibrated probability.
    """

    def __init__(self, min_score: float) -> None:
        import dlib

        self._detector = dlib.get_frontal_face_detector()
        p = min(max(min_score, 1e-6), 1 - 1e-6)
        self._margin = math.log(p / (1 - p))

    def detect(self, rgb: np.ndarray) -> list[tuple[Box, float]]:
        rects, margins, _ = self._detector.run(np.ascontiguousarray(rgb), 1, self._margin)
        return [((r.left(), r.top(), r.right() + 1, r.bottom() + 1), 1.0 / (1.0 + math.exp(-m)))
                for r, m in zip(rects, margins)]

    def close(self) -> None:
        return None


class _Confirmer:
    """A second opinion on a face box: dlib's HOG detector on the region around it, re-framed to a fixed
    scale (the face ``FACE_PX`` wide with ``CONTEXT`` times its size around it) so it costs the same for any
    face size. Its SVM margin may be as low as ``MARGIN`` (dlib's own default is 0): a real face that
    BlazeFace found passes easily; what is not a face gives dlib nothing at any margin near 0."""

    FACE_PX = 80
    CONTEXT = 1.8
    MARGIN = -0.5

    def __init__(self) -> None:
        import dlib

        self._detector = dlib.get_frontal_face_detector()

    def __call__(self, rgb: np.ndarray, box: Box) -> bool:
        size = round(self.FACE_PX * self.CONTEXT)
        region = crop_face(rgb, box, self.CONTEXT - 1)
        region = cv2.resize(region, (size, size), interpolation=cv2.INTER_AREA if region.shape[0] > size
                            else cv2.INTER_LINEAR)
        return any(len(self._detector.run(region, upsample, self.MARGIN)[0]) for upsample in (0, 1))


class _Haar:
    """OpenCV's Viola-Jones frontal cascade. It gives no confidence, so every face scores 1.0."""

    def __init__(self, min_score: float) -> None:
        self._cascade = cv2.CascadeClassifier(str(HAAR_CASCADE))
        if self._cascade.empty():
            raise FaceDetectorError(f"the Haar cascade {HAAR_CASCADE} could not be loaded")

    def detect(self, rgb: np.ndarray) -> list[tuple[Box, float]]:
        grey = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
        boxes = self._cascade.detectMultiScale(grey, scaleFactor=1.1, minNeighbors=5, minSize=(24, 24))
        return [((x, y, x + w, y + h), 1.0) for x, y, w, h in np.reshape(boxes, (-1, 4)).tolist()]

    def close(self) -> None:
        return None


_BACKENDS: dict[str, type[Any]] = {"mediapipe": _MediaPipe, "dlib": _Dlib, "haar": _Haar}


class FaceDetector:
    """Cascade mediapipe -> dlib -> OpenCV Haar: stops at the first detector that finds a face.

    Requested detectors are checked (package installed, model file present) at construction, built on
    first use and reused; none of them is thread-safe, so ``detect`` holds a lock. With ``confirm`` (the
    default) MediaPipe and Haar hits must be confirmed by dlib on their region (``_Confirmer``).
    """

    CONFIRMED = ("mediapipe", "haar")

    def __init__(self, detectors: Sequence[str] = DETECTORS, min_score: float = 0.5, max_side: int = 640,
                 confirm: bool = True) -> None:
        if not detectors:
            raise FaceDetectorError("no face detector was requested")
        if not 0.0 <= min_score <= 1.0:
            raise ValueError(f"min_score must lie in [0, 1], got {min_score}")
        for name in (*detectors, *(("dlib",) if confirm else ())):
            _check_available(name)
        self.detectors = tuple(detectors)
        self.confirm = confirm
        self._confirmer: _Confirmer | None = None
        self.min_score = min_score
        self.max_side = max_side
        self._backends: dict[str, Any] = {}
        self._lock = threading.Lock()

    def detect(self, image: np.ndarray, frame_index: int = 0) -> list[Face]:
        """All faces in an RGB uint8 frame, best first, from the first detector that finds any; [] = no face."""
        if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
            raise ValueError(f"expected an H x W x 3 uint8 RGB image, got {image.dtype} {image.shape}")
        small, scale = _downscale(image, self.max_side)
        failures = []
        with self._lock:
            for name in self.detectors:
                try:
                    found = self._backend(name).detect(small)
                except _RUNTIME_ERRORS as e:
                    logger.warning("face detector %s failed on frame %d (%s); trying the next one", name,
                                   frame_index, e)
                    failures.append(f"{name}: {e}")
                    continue
                faces = []
                for box, score in found:
                    full = _to_frame(box, scale, image.shape)
                    if full is not None and self._confirmed(name, image, full, frame_index):
                        faces.append(Face(full, score, name, frame_index))
                if faces:
                    logger.debug("frame %d: %d face(s) found by %s", frame_index, len(faces), name)
                    return sorted(faces, key=lambda f: (f.score, _area(f.box)), reverse=True)
        if len(failures) == len(self.detectors):
            raise FaceDetectorError("every face detector failed: " + "; ".join(failures))
        logger.debug("frame %d: no face found by %s", frame_index, ", ".join(self.detectors))
        return []

    def _confirmed(self, name: str, image: np.ndarray, box: Box, frame_index: int) -> bool:
        if not self.confirm or name not in self.CONFIRMED:
            return True
        if self._confirmer is None:
            self._confirmer = _Confirmer()
        if self._confirmer(image, box):
            return True
        logger.debug("frame %d: %s box %s not confirmed by dlib; dropped", frame_index, name,
                     [round(v) for v in box])
        return False

    def detect_frames(self, frames: list[Frame]) -> list[list[Face]]:
        """Faces per frame, with ``track_id`` set so that a video verdict can be made per person."""
        return track_faces([self.detect(frame.image, frame.index) for frame in frames])

    def close(self) -> None:
        """Release the detectors (MediaPipe's graph otherwise tears down noisily at interpreter exit)."""
        with self._lock:
            for backend in self._backends.values():
                backend.close()
            self._backends.clear()

    def __enter__(self) -> "FaceDetector":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _backend(self, name: str) -> Any:
        if name not in self._backends:
            try:
                self._backends[name] = _BACKENDS[name](self.min_score)
            except (ImportError, *_RUNTIME_ERRORS) as e:
                raise FaceDetectorError(f"the {name} face detector could not be started: {e}") from e
            logger.debug("face detector %s started", name)
        return self._backends[name]


def _check_available(name: str) -> None:
    """Fail at construction on what can be known without building the detector."""
    if name not in DETECTORS:
        raise FaceDetectorError(f"unknown face detector {name!r}; choose from {', '.join(DETECTORS)}")
    if importlib.util.find_spec(_PACKAGES[name]) is None:
        raise FaceDetectorError(f"the {name} face detector needs the {_PACKAGES[name]} package, which is "
                                "not installed")
    model = {"mediapipe": MEDIAPIPE_MODEL, "haar": HAAR_CASCADE}.get(name)
    if model is not None and not model.is_file():
        raise FaceDetectorError(f"the {name} face detector's model file {model} is missing")


def _downscale(image: np.ndarray, max_side: int) -> tuple[np.ndarray, float]:
    """Detection runs on a copy whose longer side is at most ``max_side``: same faces, a fraction of the time."""
    longest = max(image.shape[:2])
    if longest <= max_side:
        return image, 1.0
    scale = max_side / longest
    size = (max(1, round(image.shape[1] * scale)), max(1, round(image.shape[0] * scale)))
    return cv2.resize(image, size, interpolation=cv2.INTER_AREA), scale


def _to_frame(box: Box, scale: float, shape: tuple[int, ...]) -> Box | None:
    """Back to full-resolution pixels, clipped to the frame; None if nothing of the box is inside."""
    height, width = shape[:2]
    x0, y0, x1, y1 = (float(v) / scale for v in box)
    x0, x1 = min(max(x0, 0.0), width), min(max(x1, 0.0), width)
    y0, y1 = min(max(y0, 0.0), height), min(max(y1, 0.0), height)
    return (x0, y0, x1, y1) if x1 > x0 and y1 > y0 else None


def _area(box: Box) -> float:
    return max(0.0, box[2] - box[0]) * max(0.0, box[3] - box[1])


WHOLE_IMAGE = "whole_image"  # the "detector" of a face that is the whole input


def whole_image_face(image: np.ndarray, frame_index: int = 0) -> Face:
    """The whole frame as the face: for inputs that are already face crops (as the models were trained on)."""
    height, width = image.shape[:2]
    return Face((0.0, 0.0, float(width), float(height)), 1.0, WHOLE_IMAGE, frame_index)


def crop_face(image: np.ndarray, box: Sequence[float], margin: float) -> np.ndarray:
    """Square crop of side ``max(w, h) * (1 + margin)`` centred on the box, not resized.

    Where the square leaves the frame it is padded by repeating the edge pixels, so the face stays
    centred (as in the training crops) instead of sliding off-centre near a border.
    """
    x0, y0, x1, y1 = (float(v) for v in box)
    if x1 <= x0 or y1 <= y0:
        raise ValueError(f"empty face box {tuple(box)}")
    side = max(1, round(max(x1 - x0, y1 - y0) * (1 + margin)))
    left = round((x0 + x1) / 2 - side / 2)
    top = round((y0 + y1) / 2 - side / 2)
    height, width = image.shape[:2]
    inside = image[max(top, 0):min(top + side, height), max(left, 0):min(left + side, width)]
    if inside.size == 0:
        raise ValueError(f"face box {tuple(box)} lies outside the {width}x{height} frame")
    pad_top, pad_left = max(0, -top), max(0, -left)
    pad_bottom, pad_right = side - pad_top - inside.shape[0], side - pad_left - inside.shape[1]
    crop = cv2.copyMakeBorder(inside, pad_top, pad_bottom, pad_left, pad_right, cv2.BORDER_REPLICATE)
    return np.ascontiguousarray(crop, dtype=np.uint8)


def _intersection(a: Box, b: Box) -> float:
    return _area((max(a[0], b[0]), max(a[1], b[1]), min(a[2], b[2]), min(a[3], b[3])))


def iou(a: Box, b: Box) -> float:
    """Intersection over union of two x0, y0, x1, y1 boxes."""
    inter = _intersection(a, b)
    union = _area(a) + _area(b) - inter
    return inter / union if union > 0 else 0.0


def track_faces(per_frame: list[list[Face]], iou_threshold: float = 0.3) -> list[list[Face]]:
    """Give each person a stable ``track_id`` (0, 1, 2... in order of first appearance).

    Greedy IoU matching, best overlaps first, of each frame's faces against every track's last box; a
    face that overlaps no track by ``iou_threshold`` starts a new one. Returns new Face objects.
    """
    last_boxes: list[Box] = []
    tracked: list[list[Face]] = []
    for faces in per_frame:
        pairs = sorted(((iou(face.box, last), f, t) for f, face in enumerate(faces)
                        for t, last in enumerate(last_boxes)), reverse=True)
        track_of: dict[int, int] = {}
        for overlap, f, t in pairs:
            if overlap < iou_threshold:
                break
            if f not in track_of and t not in track_of.values():
                track_of[f] = t
        frame_faces = []
        for f, face in enumerate(faces):
            if f not in track_of:
                track_of[f] = len(last_boxes)
                last_boxes.append(face.box)
            last_boxes[track_of[f]] = face.box
            frame_faces.append(replace(face, track_id=track_of[f]))
        tracked.append(frame_faces)
    return tracked
