"""Does a face swap show in who the face is? A training-free probe on wild_dev with dlib's face-recognition ResNet.

A swap puts one person's inner face into another's head, and renders it frame by frame, so two cues were measured
on the faces the app finds (its cascade, 16 frames, IoU tracks; the file is its most suspicious track seen in at
least 3 frames, as in the app):

- inner-outer: the distance between the identity descriptor of the face with only the landmark hull kept and that
  of the face with the hull filled in (the hull of all 68 landmarks, and of the brows-to-mouth points 17-67);
  a swap should put two people there;
- identity spread: the mean distance of a track's descriptors (of the whole aligned face) from their mean; a
  swap's identity was expected to flicker more than a real face's.

Larger is "more fake" for both, as they were set before looking. The inner-outer distances are also measured on a
seeded sample of DFDC validation crops; DFDC keeps one crop per video, so the identity spread cannot be measured,
selected or thresholded there: this is a probe, not a model.

    python docs/runs/identity-probe/probe.py   # from the repository root, about 12 min on two cores
"""
from __future__ import annotations

import csv
import logging
from pathlib import Path

import cv2
import dlib
import numpy as np
from tqdm.auto import tqdm

from deepfake_space.detector import file_track
from deepfake_space.faces import FaceDetector, crop_face
from deepfake_space.media import load_media
from train.compare import WILD_DEV_GROUPS, file_groups
from train.cross_domain import WILD_DIR
from train.data import load_split, subset
from train.metrics import roc_auc_ci
from train.sbi import LandmarkDetector, landmark_model_path

logger = logging.getLogger("identity_probe")

HERE = Path(__file__).parent
RECOGNITION_MODEL = "dlib_face_recognition_resnet_model_v1.dat"  # in the same package as the landmark model
CHIP, PADDING = 150, 0.25  # dlib's aligned face for its recognition network, and its default padding
MARGIN = 0.5  # context around the detector's box, for dlib's own face detector and landmarks
BLURS = (1.5, 3.0)  # Gaussian sigmas, in pixels of the crop
DFDC, DFDC_CROPS = Path("../shared/data/dfdc_faces"), 600
HULLS = {"inner-outer": slice(0, 68), "inner-outer-brows-to-mouth": slice(17, 68)}
CUES = (*HULLS, "identity-spread")


class Identity:
    """dlib's 68 landmarks, its aligned face chip and its 128-d face descriptor."""

    def __init__(self) -> None:
        self._landmarks = LandmarkDetector()
        self._recognise = dlib.face_recognition_model_v1(str(landmark_model_path().parent / RECOGNITION_MODEL))
        # dlib's alignment puts the face in the central 1 / (1 + 2 * padding) of the chip
        inset = round(CHIP * PADDING / (1 + 2 * PADDING))
        self._chip_face = dlib.rectangle(inset, inset, CHIP - inset, CHIP - inset)

    def descriptor(self, rgb: np.ndarray) -> np.ndarray:
        return np.array(self._recognise.compute_face_descriptor(np.ascontiguousarray(rgb)))

    def aligned(self, crop: np.ndarray) -> np.ndarray | None:
        """dlib's aligned face chip of the largest face it finds, or None."""
        shape = self._landmarks.shape(crop)
        return None if shape is None else dlib.get_face_chip(crop, shape, CHIP, PADDING)

    def cues(self, crop: np.ndarray) -> dict[str, object] | None:
        """The whole face's descriptor and each hull's inner-outer distance, or None where dlib finds no face."""
        chip = self.aligned(crop)
        if chip is None:
            return None
        points = np.array([(p.x, p.y) for p in self._landmarks.shape(chip, self._chip_face).parts()], np.int32)
        fill = chip.reshape(-1, 3).mean(0).astype(np.uint8)
        out: dict[str, object] = {"descriptor": self.descriptor(chip)}
        for name, hull in HULLS.items():
            inside = np.zeros(chip.shape[:2], np.uint8)
            cv2.fillConvexPoly(inside, cv2.convexHull(points[hull]), 1)
            inner, outer = chip.copy(), chip.copy()
            inner[inside == 0], outer[inside == 1] = fill, fill
            out[name] = float(np.linalg.norm(self.descriptor(inner) - self.descriptor(outer)))
        return out


def spread(descriptors: list[np.ndarray]) -> float:
    """The mean distance of a track's descriptors from their mean."""
    descriptors = np.array(descriptors)
    return float(np.linalg.norm(descriptors - descriptors.mean(0), axis=1).mean())


def track_cues(faces: list[dict[str, object]]) -> dict[str, float]:
    """A track's cues: the mean inner-outer distances, and the spread of its descriptors."""
    return ({name: float(np.mean([f[name] for f in faces])) for name in HULLS}
            | {"identity-spread": spread([f["descriptor"] for f in faces])})


def file_faces(path: Path, faces: FaceDetector) -> dict[int, list[np.ndarray]]:
    """The face crops of each track the app's cascade finds in the file's 16 sampled frames."""
    media = load_media(path)
    tracks: dict[int, list[np.ndarray]] = {}
    for frame, found in zip(media.frames, faces.detect_frames(media.frames)):
        for face in found:
            tracks.setdefault(face.track_id, []).append(crop_face(frame.image, face.box, MARGIN))
    return tracks


def file_cues(crops: dict[int, list[np.ndarray]], identity: Identity) -> tuple[dict[str, float], int | None, str]:
    """Each cue of the file's most suspicious track (per cue, as the app picks a track per model), the track the
    identity spread picked, and a message."""
    tracks = {t: [c for c in map(identity.cues, faces) if c is not None] for t, faces in crops.items()}
    tracks = {t: cues for t, cues in tracks.items() if cues}
    if not tracks:
        return {}, None, "dlib found no face to align"
    per_track = {t: track_cues(fs) for t, fs in tracks.items()}
    # file_track reads a track's length from its list of per-frame values: the track's cue, repeated
    picked = {cue: file_track({t: [per_track[t][cue]] * len(fs) for t, fs in tracks.items()}) for cue in CUES}
    return {cue: per_track[t][cue] for cue, t in picked.items()}, picked["identity-spread"], ""


def dfdc_inner_outer(identity: Identity) -> None:
    """The inner-outer distances on DFDC validation crops, where the released models were selected. The crops are
    tight, so each gets a border of its mean colour for dlib's face detector to find the face in."""
    rows = subset(load_split(DFDC, "validation"), DFDC_CROPS)
    labels, cues = [], []
    for row in tqdm(rows, desc="DFDC validation"):
        crop = np.asarray(row["image"].convert("RGB"))
        border = crop.shape[0] // 4
        found = identity.cues(cv2.copyMakeBorder(crop, *[border] * 4, cv2.BORDER_CONSTANT,
                                                 value=crop.reshape(-1, 3).mean(0).tolist()))
        if found is not None:
            labels.append(row["label"])
            cues.append([found[name] for name in HULLS])
    logger.info("DFDC validation: %d of %d crops aligned", len(labels), len(rows))
    for name, values in zip(HULLS, np.array(cues).T):
        auc = roc_auc_ci(np.array(labels), values)
        logger.info("%s: DFDC validation ROC-AUC %.3f (%.3f-%.3f)", name, auc["value"], auc["ci_low"], auc["ci_high"])


def deepfacelive_pairs(scored: list[dict], identity: Identity) -> None:
    """How often a DeepFaceLive clip's swapped half has the steadier identity than its real half, also with the real
    half's faces (of the track its spread was read on) blurred first: is a swap steadier only because it is
    smoother?"""
    halves: dict[str, dict[str, dict]] = {}
    for r, group in zip(scored, file_groups([r["file"] for r in scored], WILD_DEV_GROUPS)):
        if group != r["file"]:
            halves.setdefault(group, {})[r["label"]] = r
    pairs = [h for h in halves.values() if len(h) == 2]
    for sigma in (0.0, *BLURS):
        real = [h["real"]["identity-spread"] if sigma == 0 else blurred_spread(h["real"]["crops"], sigma, identity)
                for h in pairs]
        fake = [h["fake"]["identity-spread"] for h in pairs]
        logger.info("DeepFaceLive clips, real half blurred at sigma %.1f: the swapped half's identity spread is below "
                    "the real half's in %d of %d (mean spread %.3f real, %.3f swapped)", sigma,
                    sum(f < r for f, r in zip(fake, real)), len(pairs), np.mean(real), np.mean(fake))


def blurred_spread(crops: list[np.ndarray], sigma: float, identity: Identity) -> float:
    """The identity spread of a track's faces, each Gaussian-blurred before it is aligned."""
    chips = [identity.aligned(cv2.GaussianBlur(crop, (0, 0), sigma)) for crop in crops]
    return spread([identity.descriptor(chip) for chip in chips if chip is not None])


def log_wild(results: list[dict], scored: list[dict]) -> None:
    """wild_cues.csv, and each cue's video ROC-AUC."""
    with (HERE / "wild_cues.csv").open("w", newline="") as f:
        writer = csv.DictWriter(f, ["file", "label", *CUES, "message"], extrasaction="ignore")
        writer.writeheader()
        writer.writerows({k: round(v, 5) if isinstance(v, float) else v for k, v in r.items()} for r in results)
    logger.info("%d of %d files scored; no aligned face in %s", len(scored), len(results),
                [r["file"] for r in results if r["message"]] or "none")
    y = np.array([r["label"] == "fake" for r in scored], dtype=int)
    for cue in CUES:
        auc = roc_auc_ci(y, np.array([r[cue] for r in scored]))
        logger.info("%s: video ROC-AUC %.3f (%.2f-%.2f)", cue, auc["value"], auc["ci_low"], auc["ci_high"])


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(name)s: %(message)s")
    with (WILD_DIR / "labels.csv").open(newline="") as f:
        rows = list(csv.DictReader(f))
    identity, results = Identity(), []
    with FaceDetector() as faces:
        for row in tqdm(rows, desc="wild_dev"):
            crops = file_faces(WILD_DIR / row["path"], faces)
            cues, track, message = file_cues(crops, identity)
            results.append({"file": row["path"], "label": row["label"], **cues, "message": message,
                            "crops": crops.get(track, [])})
    scored = [r for r in results if not r["message"]]
    log_wild(results, scored)
    deepfacelive_pairs(scored, identity)
    dfdc_inner_outer(identity)


if __name__ == "__main__":
    main()
