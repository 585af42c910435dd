"""The example media the Space offers: committed face crops and a short video synthesized on first use.

The crops are four JPEGs (two real, two fake) taken once from the DFDC validation split and committed
under ``examples/``, so the app never needs the dataset (nor the network) at run time:

    python -m deepfake_space.examples --from-parquet ../shared/data/dfdc_faces/data/validation-00000-of-00001.parquet

The video is made from the first real crop (the face drifting and zooming over a plain textured
background, H.264 through PyAV) and written to a cache folder the first time the app starts.
"""

from __future__ import annotations

import argparse
import io
import json
import logging
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from deepfake_space.synth import write_video

logger = logging.getLogger(__name__)

# The committed crops: the checkout's examples/ unless DEEPFAKE_EXAMPLES_DIR names another folder.
EXAMPLES_DIR = Path(os.environ.get("DEEPFAKE_EXAMPLES_DIR") or Path(__file__).resolve().parents[1] / "examples")
SOURCES_FILE = "sources.json"
VIDEO_NAME = "moving_face.mp4"
LABELS = {0: "real", 1: "fake"}


@dataclass(frozen=True)
class Example:
    """One row of the examples table: a file and how to analyse it."""

    path: Path
    label: str
    whole_image: bool


def cache_dir() -> Path:
    """Where generated media go: ``DEEPFAKE_CACHE_DIR`` or a folder in the system temp dir.

    The temp dir is one Gradio is allowed to serve files from, wherever the app runs.
    """
    return Path(os.environ.get("DEEPFAKE_CACHE_DIR") or Path(tempfile.gettempdir()) / "deepfake_space")


# -- the committed crops -------------------------------------------------------------------------------


def extract_from_parquet(parquet: str | Path, out_dir: str | Path = EXAMPLES_DIR, per_label: int = 2,
                         min_source_size: int = 200) -> list[Path]:
    """Copy ``per_label`` real and fake crops from a DFDC faces parquet into ``out_dir``.

    Picks crops that were at least ``min_source_size`` px in the source video (sharper faces), from
    distinct source videos, in a fixed order so the choice is reproducible; the JPEG bytes are copied
    unchanged. Writes ``sources.json`` recording where each file came from.
    """
    import pyarrow.parquet as pq

    table = pq.read_table(parquet, columns=["label", "video", "original", "width", "height"])
    rows = table.to_pylist()
    order = sorted(range(len(rows)), key=lambda i: rows[i]["video"])
    chosen: dict[int, list[int]] = {0: [], 1: []}
    originals: set[str] = set()
    for i in order:
        row = rows[i]
        if (min(row["width"], row["height"]) >= min_source_size and len(chosen[row["label"]]) < per_label
                and row["original"] not in originals):
            chosen[row["label"]].append(i)
            originals.add(row["original"])
    if any(len(v) < per_label for v in chosen.values()):
        raise ValueError(f"{parquet} has fewer than {per_label} suitable crops per label")
    wanted = sorted(i for v in chosen.values() for i in v)
    images = pq.read_table(parquet, columns=["image"]).column("image").take(wanted).to_pylist()
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    written, sources = [], []
    for label, indices in chosen.items():
        for n, i in enumerate(indices, 1):
            image = images[wanted.index(i)]
            data = image["bytes"] if isinstance(image, dict) else image
            Image.open(io.BytesIO(data)).verify()  # a readable JPEG, not whatever the column held
            path = out_dir / f"{LABELS[label]}_{n}.jpg"
            path.write_bytes(data)
            written.append(path)
            sources.append({"file": path.name, "label": LABELS[label], "video": rows[i]["video"],
                            "original": rows[i]["original"], "source_size": [rows[i]["width"], rows[i]["height"]],
                            "dataset": "DFDC faces, validation split (research use only)"})
    (out_dir / SOURCES_FILE).write_text(json.dumps(sources, indent=2) + "\n")
    return written


def face_crops(folder: str | Path = EXAMPLES_DIR) -> list[Example]:
    """The committed crops, real ones first."""
    folder = Path(folder)
    paths = sorted(folder.glob("real_*.jpg")) + sorted(folder.glob("fake_*.jpg"))
    return [Example(p, f"{p.stem.replace('_', ' face crop ')} (DFDC)", True) for p in paths]


# -- the synthesized video -----------------------------------------------------------------------------


def _background(width: int, height: int) -> np.ndarray:
    yy, xx = np.mgrid[0:height, 0:width]
    return np.stack([60 + xx * 120 // max(1, width - 1), 70 + yy * 100 // max(1, height - 1),
                     np.full_like(xx, 110)], axis=-1).astype(np.uint8)


def moving_face_frame(face: Image.Image, t: float, width: int, height: int) -> np.ndarray:
    """The face at time ``t`` (s): drifting left-right and slowly zooming in and out."""
    side = int(height * (0.55 + 0.15 * np.sin(t * 1.3)))
    head = face.resize((side, side), Image.BILINEAR)
    frame = Image.fromarray(_background(width, height))
    x = int((width - side) / 2 + np.sin(t * 1.1) * (width - side) * 0.4)
    y = int((height - side) / 2 + np.cos(t * 0.9) * (height - side) * 0.2)
    frame.paste(head, (x, y))
    return np.asarray(frame)


def write_moving_face_video(face_image: str | Path, path: str | Path, seconds: float = 3.0, fps: int = 12,
                            width: int = 480, height: int = 360) -> Path:
    """Encode ``seconds`` of the face moving over a background as H.264 (yuv420p, CRF 23) into ``path``."""
    face = Image.open(face_image).convert("RGB")
    return write_video(path, lambda t: moving_face_frame(face, t, width, height), seconds, fps, crf=23)


def example_video(folder: str | Path | None = None, crops: str | Path = EXAMPLES_DIR) -> Path | None:
    """The synthesized example video, made on first use; None when there is no crop to make it from."""
    path = Path(folder or cache_dir()) / VIDEO_NAME
    if path.is_file() and path.stat().st_size > 0:
        return path
    source = next((e.path for e in face_crops(crops) if e.path.stem.startswith("real")), None)
    if source is None:
        logger.warning("no face crop under %s to synthesize the example video from", crops)
        return None
    logger.info("synthesizing the example video %s", path)
    return write_moving_face_video(source, path)


def all_examples(folder: str | Path | None = None, crops: str | Path = EXAMPLES_DIR) -> list[Example]:
    """The examples table: the committed crops, then the synthesized video (faces detected)."""
    examples = face_crops(crops)
    video = example_video(folder, crops)
    if video is not None:
        examples.append(Example(video, "video of a moving face (synthesized)", False))
    return examples


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--from-parquet", metavar="PARQUET", help="take the example crops from this DFDC faces parquet")
    p.add_argument("--out", default=str(EXAMPLES_DIR), help="folder for the crops (default: examples/)")
    p.add_argument("--per-label", type=int, default=2)
    p.add_argument("--video", metavar="MP4", help="also write the synthesized example video here")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    if args.from_parquet:
        for path in extract_from_parquet(args.from_parquet, args.out, per_label=args.per_label):
            print(f"wrote {path} ({path.stat().st_size / 1024:.1f} KiB)")
    if args.video:
        source = face_crops(args.out)[0].path
        print(f"wrote {write_moving_face_video(source, args.video)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
