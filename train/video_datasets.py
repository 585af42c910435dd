"""Video datasets -> face-crop parquet through the library's face cascade.

    python -m train.video_datasets --kind ffpp --root /data/FaceForensics++ --out cache/ffpp_c23.parquet

Layouts read:
- FaceForensics++ (c23): ``original_sequences/youtube/c23/videos/000.mp4`` (real) and
  ``manipulated_sequences/<method>/c23/videos/000_003.mp4`` (fake; target 000, source 003).
- DFDC: part folders each with a ``metadata.json`` (``{"x.mp4": {"label": "FAKE", "original": "y.mp4"}}``).
- Celeb-DF v2: ``List_of_testing_videos.txt`` lines ``<1 real | 0 fake> <relative path>``.

Each video gives N uniformly sampled frames (default 10); the largest face of each frame is cropped
as the DFDC crops are framed and saved as JPEG. The group id keeps every video made from the same
source together, so a split never leaks a video. Videos where no face was found are listed in the
returned summary and in ``<out>.no_face.txt``, never silently dropped.
"""

from __future__ import annotations

import argparse
import io
import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import datasets
from PIL import Image
from tqdm.auto import tqdm

from deepfake_space.errors import MediaError
from deepfake_space.faces import FaceDetector, crop_face
from deepfake_space.media import sample_video

logger = logging.getLogger(__name__)

FFPP_METHODS = ("Deepfakes", "Face2Face", "FaceSwap", "NeuralTextures", "FaceShifter")
CROP_MARGIN = 0.1
CROP_SIZE = 224


@dataclass(frozen=True)
class VideoItem:
    path: Path
    label: int
    group: str


def ffpp_items(root: Path, methods: tuple[str, ...] = FFPP_METHODS, compression: str = "c23") -> list[VideoItem]:
    """Real videos are grouped by their id; a fake ``000_003`` joins the group of its target ``000``."""
    items = [VideoItem(p, 0, p.stem) for p in
             sorted((root / "original_sequences" / "youtube" / compression / "videos").glob("*.mp4"))]
    for method in methods:
        folder = root / "manipulated_sequences" / method / compression / "videos"
        items += [VideoItem(p, 1, p.stem.split("_")[0]) for p in sorted(folder.glob("*.mp4"))]
    return items


def dfdc_items(root: Path) -> list[VideoItem]:
    """Every ``metadata.json`` below ``root``; a fake is grouped with its ``original``."""
    items = []
    for meta_file in sorted(root.rglob("metadata.json")):
        for name, meta in sorted(json.loads(meta_file.read_text()).items()):
            label = {"REAL": 0, "FAKE": 1}[meta["label"].upper()]
            items.append(VideoItem(meta_file.parent / name, label, meta.get("original") or name))
    return items


def celebdf_items(root: Path, list_file: str = "List_of_testing_videos.txt") -> list[VideoItem]:
    """Celeb-DF marks real as 1 in its list; here real is 0. Groups are the source identity (``id0``)."""
    items = []
    for line in (root / list_file).read_text().splitlines():
        if not line.strip():
            continue
        flag, rel = line.split(maxsplit=1)
        path = root / rel
        items.append(VideoItem(path, 0 if flag == "1" else 1, path.stem.split("_")[0]))
    return items


ADAPTERS: dict[str, Callable[[Path], list[VideoItem]]] = {"ffpp": ffpp_items, "dfdc": dfdc_items,
                                                          "celebdf": celebdf_items}


def _jpeg(crop) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(crop).resize((CROP_SIZE, CROP_SIZE), Image.BICUBIC).save(buf, format="JPEG", quality=95)
    return buf.getvalue()


def extract_faces(items: list[VideoItem], out: Path, frames_per_video: int = 10,
                  detector: FaceDetector | None = None) -> dict[str, list[str]]:
    """Crop faces from every video into a parquet file of image/label/group/video/frame rows."""
    rows: dict[str, list] = {"image": [], "label": [], "group": [], "video": [], "frame": []}
    no_face, failed = [], []
    owned = detector is None
    detector = detector or FaceDetector()
    try:
        for item in tqdm(items, desc="extract faces"):
            try:
                media = sample_video(item.path, num_frames=frames_per_video)
            except MediaError as e:
                failed.append(f"{item.path}: {e}")
                continue
            found = 0
            for frame, faces in zip(media.frames, detector.detect_frames(media.frames)):
                if not faces:
                    continue
                face = max(faces, key=lambda f: (f.box[2] - f.box[0]) * (f.box[3] - f.box[1]))
                rows["image"].append({"bytes": _jpeg(crop_face(frame.image, face.box, CROP_MARGIN)), "path": None})
                rows["label"].append(item.label)
                rows["group"].append(item.group)
                rows["video"].append(str(item.path.name))
                rows["frame"].append(frame.index)
                found += 1
            if not found:
                no_face.append(str(item.path))
    finally:
        if owned:
            detector.close()
    if not rows["image"]:
        raise ValueError(f"no face found in any of the {len(items)} videos")
    ds = datasets.Dataset.from_dict(rows).cast_column("image", datasets.Image())
    out.parent.mkdir(parents=True, exist_ok=True)
    ds.to_parquet(str(out))
    out.with_suffix(".no_face.txt").write_text("".join(f"{p}\n" for p in no_face + failed))
    logger.info("%d crops from %d videos into %s; %d without a face, %d unreadable", len(ds), len(items), out,
                len(no_face), len(failed))
    return {"no_face": no_face, "failed": failed}


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--kind", choices=sorted(ADAPTERS), required=True)
    p.add_argument("--root", type=Path, required=True)
    p.add_argument("--out", type=Path, required=True, help="parquet file to write")
    p.add_argument("--frames", type=int, default=10, help="frames sampled per video")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    summary = extract_faces(ADAPTERS[args.kind](args.root), args.out, args.frames)
    print(f"wrote {args.out}; videos without a face: {len(summary['no_face'])}, unreadable: {len(summary['failed'])}")


if __name__ == "__main__":
    main()
