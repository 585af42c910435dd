"""The extra rows a student distils on: fixed self-blended fakes of the DFDC train reals, and face crops of
real photos from outside DFDC, written as a parquet split that ``train.train --extra-train`` appends.

    python -m train.transfer_set --data ../shared/data/dfdc_faces --photos ../shared/data/real_photos/images \
        --out cache/transfer_set

A student learns from cached teacher logits, so its fakes cannot be drawn anew each epoch as the
teacher's are (``train.sbi.SelfBlendDataset``): each real train crop with landmarks gets one blend, seeded
by its row, that the teacher scores once. The photos are an off-DFDC transfer set where the student
learns to agree with its teacher (they are also labelled real). Only every second photo (in sorted name
order, ``train.data.photo_halves``) is used; the other half stays unseen, so the false-accusation rate can still be
measured on photos no model trained on.
"""

from __future__ import annotations

import argparse
import io
import json
import logging
import os
from pathlib import Path

import datasets
import numpy as np
from PIL import Image
from tqdm.auto import tqdm

from deepfake_space.faces import FaceDetector, crop_face
from deepfake_space.media import load_image
from train.data import load_split, photo_halves
from train.sbi import cached_landmarks, self_blend

logger = logging.getLogger("transfer_set")

CROP_SIZE = 224  # as the DFDC crops
FEATURES = datasets.Features({"image": datasets.Image(), "label": datasets.ClassLabel(names=["real", "fake"]),
                              "group": datasets.Value("string"), "source": datasets.Value("string")})


def _png(image: np.ndarray) -> dict:
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="PNG")
    return {"bytes": buffer.getvalue(), "path": None}


def blend_rows(data: str, split: str, landmark_cache: Path, seed: int) -> tuple[dict[str, list], dict[str, int]]:
    """One self-blended fake per real row of ``split`` with landmarks; row i's blend is seeded by (seed, i)."""
    rows = load_split(data, split)
    landmarks = cached_landmarks(rows, landmark_cache)
    sources = np.flatnonzero(np.isfinite(landmarks[:, 0, 0]))
    out: dict[str, list] = {"image": [], "label": [], "group": [], "source": []}
    for i in tqdm(sources.tolist(), desc="self-blends"):
        row = rows[i]
        img = np.asarray(row["image"].convert("RGB"))
        points = landmarks[i] * np.array([img.shape[1], img.shape[0]], dtype=np.float32)
        blend = self_blend(img, points, np.random.default_rng([seed, i]))
        out["image"].append(_png(blend.image))
        out["label"].append(1)
        out["group"].append(str(row["group"]))
        out["source"].append(f"sbi:{split}:{i}")
    real = sum(int(v) == 0 for v in rows["label"])
    return out, {"real_rows": real, "blended": len(sources), "skipped_no_landmarks": real - len(sources)}


def photo_crops(photos: list[Path], margin: float) -> tuple[list[tuple[Path, np.ndarray]], int]:
    """The best face of each photo, cropped square with ``margin`` as the app crops it, at the DFDC crop size; and
    how many photos had no face."""
    crops: list[tuple[Path, np.ndarray]] = []
    with FaceDetector() as detector:
        for path in tqdm(photos, desc="photo faces"):
            image = load_image(path)
            found = detector.detect(image)
            if found:
                crop = crop_face(image, found[0].box, margin)
                crops.append((path, np.asarray(Image.fromarray(crop).resize((CROP_SIZE, CROP_SIZE),
                                                                            Image.Resampling.BICUBIC))))
    no_face = len(photos) - len(crops)
    logger.info("photos: %d cropped, %d without a face", len(crops), no_face)
    return crops, no_face


def photo_rows(photos: list[Path], margin: float) -> tuple[dict[str, list], dict[str, int]]:
    """``photo_crops`` as rows of the parquet split, labelled real."""
    crops, no_face = photo_crops(photos, margin)
    out: dict[str, list] = {"image": [_png(crop) for _, crop in crops], "label": [0] * len(crops),
                            "group": [f"photo:{path.stem}" for path, _ in crops],
                            "source": [f"photo:{path.name}" for path, _ in crops]}
    return out, {"photos": len(photos), "cropped": len(crops), "no_face": no_face}


def build(data: str, photos: Path, out: Path, landmark_cache: Path, seed: int = 0, margin: float = 0.1,
          split: str = "train", blends: bool = True) -> dict:
    """Write ``out/data/train-00000-of-00001.parquet`` and ``out/record.json``; returns the record. Without
    ``blends`` only the photo faces are written (a teacher draws its own blends, ``train.train --sbi``)."""
    blended, blend_counts = (blend_rows(data, split, landmark_cache, seed) if blends
                             else ({k: [] for k in FEATURES}, None))
    transfer, _ = photo_halves(photos)
    faces, photo_counts = photo_rows(transfer, margin)
    rows = {k: blended[k] + faces[k] for k in blended}
    target = out / "data" / "train-00000-of-00001.parquet"
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_suffix(f".{os.getpid()}.partial")
    datasets.Dataset.from_dict(rows, features=FEATURES).to_parquet(str(partial))
    partial.rename(target)
    record = {"data": data, "split": split, "photos": str(photos), "seed": seed, "margin": margin,
              "self_blends": blend_counts, "photo_faces": photo_counts, "rows": len(rows["label"])}
    (out / "record.json").write_text(json.dumps(record, indent=2) + "\n")
    logger.info("transfer set: %s", record)
    return record


def main(argv: list[str] | None = None) -> None:
    logging.basicConfig(level=os.environ.get("LOGLEVEL", "INFO"), format="%(asctime)s %(name)s %(message)s")
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", required=True, help="the DFDC face crops (HF-datasets folder)")
    p.add_argument("--split", default="train")
    p.add_argument("--photos", required=True, help="folder of real photos (every second one is used)")
    p.add_argument("--out", required=True, help="folder to write the parquet split into")
    p.add_argument("--landmark-cache", default="cache/landmarks")
    p.add_argument("--margin", type=float, default=0.1, help="face margin of the photo crops (the models' 0.1)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--blends", action=argparse.BooleanOptionalAction, default=True,
                   help="--no-blends: the photo faces only, for a teacher that draws its own blends (--sbi)")
    args = p.parse_args(argv)
    build(args.data, Path(args.photos), Path(args.out), Path(args.landmark_cache), args.seed, args.margin, args.split,
          args.blends)


if __name__ == "__main__":
    main()
